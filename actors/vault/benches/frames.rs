//! Sealing and opening throughput of the framed Fernet stream (1 MiB frames), in memory: the
//! crypto's share of an upload or download.
//!
//!   cargo bench -p careport-vault --bench frames

use careport_vault::frames::DEFAULT_FRAME;
use careport_vault::{Key, Opener, Sealer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let key = Key::generate();
    let id = [9u8; 16];
    let content: Vec<u8> = (0..16usize << 20).map(|i| (i % 251) as u8).collect();
    let mut sealed = Vec::new();
    let mut s = Sealer::new(&key, id, DEFAULT_FRAME);
    for chunk in content.chunks(64 << 10) {
        s.push(chunk, &mut sealed);
    }
    s.finish(&mut sealed);

    let mut g = c.benchmark_group("vault 16 MiB");
    g.throughput(Throughput::Bytes(content.len() as u64));
    g.sample_size(10);
    g.bench_function("seal (64 KiB writes)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(sealed.len());
            let mut s = Sealer::new(&key, id, DEFAULT_FRAME);
            for chunk in content.chunks(64 << 10) {
                s.push(chunk, &mut out);
                out.clear(); // streamed away: memory stays one frame
            }
            s.finish(&mut out);
        })
    });
    g.bench_function("open (64 KiB reads)", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            let mut o = Opener::new(&key, id);
            for chunk in sealed.chunks(64 << 10) {
                o.push(chunk, &mut out).expect("open");
                out.clear();
            }
            o.finish().expect("finish");
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
