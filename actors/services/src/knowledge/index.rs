//! The embedded deployment's in-process vector index: the active space's chunk vectors in a
//! [`VectorIndex`], beside what the search filter needs of each chunk's document, so the filter
//! runs inside the search ([`DocFilter::allows`], the same rule the SQL arms apply).
//!
//! It is loaded from SQLite at start (the `embeddings` rows are the truth; the index is rebuilt
//! from them, so it survives any restart) and kept in step by the writes of this process:
//! embedding jobs add vectors, deletes remove them, a metadata change updates the document's
//! entry, at once. SQLite means one node, so no other process writes behind its back; the CLI
//! queues its reindex as a job that the server runs.

use std::collections::HashMap;
use std::sync::RwLock;

use careport_ml::index::VectorIndex;
use careport_store::Db;
use careport_store::knowledge::{self as stored, DocFilter, DocMeta};
use uuid::Uuid;

/// The active space's vectors and each chunk's document.
pub struct EmbeddedIndex {
    pub model: String,
    vectors: VectorIndex,
    chunks: RwLock<HashMap<u64, Uuid>>,
    docs: RwLock<HashMap<Uuid, DocMeta>>,
}

impl EmbeddedIndex {
    /// Load `model`'s space from the store.
    pub async fn load(db: &Db, model: &str, dim: usize) -> Result<Self, sqlx::Error> {
        let docs: HashMap<Uuid, DocMeta> =
            stored::all_documents(db).await?.into_iter().map(|d| (d.id, d.meta())).collect();
        let chunks: HashMap<u64, Uuid> =
            stored::chunk_documents(db).await?.into_iter().map(|(c, d)| (c as u64, d)).collect();
        let mut items: Vec<(u64, Vec<f32>)> = Vec::new();
        let mut after = 0;
        loop {
            let page = stored::space_vectors(db, model, after, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = last.0;
            items.extend(
                page.into_iter()
                    .filter(|(_, chunk, v)| *chunk >= 0 && v.len() == dim)
                    .map(|(_, chunk, v)| (chunk as u64, v)),
            );
        }
        // Building the graph is CPU work (10–30 s per 100,000 vectors on 2 cores): off the
        // async threads.
        let vectors = tokio::task::spawn_blocking(move || {
            let vectors = VectorIndex::new(dim);
            vectors.insert_batch(&items);
            vectors
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("the index build stopped: {e}")))?;
        Ok(Self { model: model.to_owned(), vectors, chunks: RwLock::new(chunks), docs: RwLock::new(docs) })
    }

    /// Chunks with a vector.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.vectors.memory_bytes()
    }

    /// A document's filter metadata, new or changed: searches see it at once.
    pub fn put_document(&self, id: Uuid, meta: DocMeta) {
        self.docs.write().unwrap_or_else(|p| p.into_inner()).insert(id, meta);
    }

    /// A document and its chunks are gone.
    pub fn remove_document(&self, id: Uuid, chunks: &[i64]) {
        self.docs.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.remove_chunks(chunks);
    }

    /// Chunks replaced or deleted.
    pub fn remove_chunks(&self, chunks: &[i64]) {
        let mut map = self.chunks.write().unwrap_or_else(|p| p.into_inner());
        for c in chunks {
            map.remove(&(*c as u64));
            self.vectors.remove(*c as u64);
        }
    }

    /// Vectors of a document's chunks, just stored.
    pub fn add(&self, doc: Uuid, vectors: &[(i64, Vec<f32>)]) {
        {
            let mut map = self.chunks.write().unwrap_or_else(|p| p.into_inner());
            for (c, _) in vectors {
                map.insert(*c as u64, doc);
            }
        }
        let items: Vec<(u64, Vec<f32>)> = vectors.iter().map(|(c, v)| (*c as u64, v.clone())).collect();
        self.vectors.insert_batch(&items);
    }

    /// The `k` nearest chunks that `filter` shows: `(chunk id, cosine)`, best first.
    pub fn search(&self, query: &[f32], k: usize, filter: &DocFilter) -> Vec<(i64, f64)> {
        let chunks = self.chunks.read().unwrap_or_else(|p| p.into_inner());
        let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
        let visible = |id: u64| chunks.get(&id).and_then(|d| docs.get(d)).is_some_and(|m| filter.allows(m));
        self.vectors.search(query, k, Some(&visible)).into_iter().map(|(id, s)| (id as i64, f64::from(s))).collect()
    }
}
