//! Sealing and opening: every size around the frame boundary, streaming in odd chunks, and every
//! way of tampering — a changed byte, reordered, dropped, duplicated or appended frames, a
//! truncated stream, a frame from another file, the wrong key. Key wrapping and rotation.

use careport_vault::frames::{Checker, frame_offset, header, open_legacy, seal_frames, sealed_len};
use careport_vault::{Key, MasterKey, Opener, Sealer, VaultError};

const FRAME: usize = 64;

fn seal(key: &Key, id: [u8; 16], content: &[u8], chunk: usize) -> Vec<u8> {
    let mut s = Sealer::new(key, id, FRAME);
    let mut out = Vec::new();
    for c in content.chunks(chunk.max(1)) {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn open(key: &Key, id: [u8; 16], sealed: &[u8], chunk: usize) -> Result<Vec<u8>, VaultError> {
    let mut o = Opener::new(key, id);
    let mut out = Vec::new();
    for c in sealed.chunks(chunk.max(1)) {
        o.push(c, &mut out)?;
    }
    o.finish()?;
    Ok(out)
}

/// Split a sealed stream into its header and frames (length prefix included).
fn frames(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (header, mut rest) = sealed.split_at(24);
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(rest[..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    (header.to_vec(), out)
}

fn join(header: &[u8], frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = header.to_vec();
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn every_size_round_trips_whatever_the_chunking() {
    let key = Key::generate();
    let id = [7u8; 16];
    for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 2 * FRAME, 3 * FRAME + 17, 1000] {
        let data = content(len);
        for (w, r) in [(1, 1), (7, 5), (FRAME, 100), (4096, 4096)] {
            let sealed = seal(&key, id, &data, w);
            assert_eq!(open(&key, id, &sealed, r).expect("open"), data, "len {len}, chunks {w}/{r}");
            let (_, fs) = frames(&sealed);
            assert_eq!(fs.len(), len.div_ceil(FRAME).max(1), "len {len}: one frame per started frame size");
        }
    }
}

#[test]
fn any_changed_byte_is_an_integrity_error_and_yields_no_later_plaintext() {
    let key = Key::generate();
    let id = [1u8; 16];
    let sealed = seal(&key, id, &content(3 * FRAME + 5), 50);
    for i in (24..sealed.len()).step_by(7) {
        let mut bad = sealed.clone();
        bad[i] ^= 0x40;
        assert!(open(&key, id, &bad, 4096).is_err(), "byte {i} changed, still opened");
    }
}

#[test]
fn reordered_dropped_duplicated_appended_or_truncated_frames_are_refused() {
    let key = Key::generate();
    let id = [2u8; 16];
    let sealed = seal(&key, id, &content(3 * FRAME + 5), 4096);
    let (h, fs) = frames(&sealed);
    assert_eq!(fs.len(), 4);
    let swapped = join(&h, &[fs[1].clone(), fs[0].clone(), fs[2].clone(), fs[3].clone()]);
    assert_eq!(open(&key, id, &swapped, 4096), Err(VaultError::Integrity(0)));
    let dropped = join(&h, &[fs[0].clone(), fs[2].clone(), fs[3].clone()]);
    assert_eq!(open(&key, id, &dropped, 4096), Err(VaultError::Integrity(1)));
    let duplicated = join(&h, &[fs[0].clone(), fs[0].clone(), fs[1].clone(), fs[2].clone(), fs[3].clone()]);
    assert_eq!(open(&key, id, &duplicated, 4096), Err(VaultError::Integrity(1)));
    let appended = join(&h, &[fs[0].clone(), fs[1].clone(), fs[2].clone(), fs[3].clone(), fs[3].clone()]);
    assert!(matches!(open(&key, id, &appended, 4096), Err(VaultError::Integrity(_))));
    let truncated = join(&h, &fs[..3]);
    assert_eq!(open(&key, id, &truncated, 4096), Err(VaultError::Truncated));
    let cut = &sealed[..sealed.len() - 10];
    assert_eq!(open(&key, id, cut, 4096), Err(VaultError::Truncated));
    assert_eq!(open(&key, id, &sealed[..10], 4096), Err(VaultError::Truncated));
}

#[test]
fn a_frame_from_another_file_or_the_wrong_key_does_not_open() {
    let key = Key::generate();
    let a = seal(&key, [3u8; 16], &content(2 * FRAME + 1), 4096);
    let b = seal(&key, [4u8; 16], &content(2 * FRAME + 1), 4096);
    let (ha, fa) = frames(&a);
    let (_, fb) = frames(&b);
    // Same key, same index, another file: spliced in, refused.
    let spliced = join(&ha, &[fa[0].clone(), fb[1].clone(), fa[2].clone()]);
    assert_eq!(open(&key, [3u8; 16], &spliced, 4096), Err(VaultError::Integrity(1)));
    assert_eq!(open(&key, [4u8; 16], &a, 4096), Err(VaultError::Format), "the header names another file");
    assert_eq!(open(&Key::generate(), [3u8; 16], &a, 4096), Err(VaultError::Integrity(0)));
}

#[test]
fn keys_wrap_unwrap_and_rotate_without_touching_files() {
    let master = MasterKey(Key::generate());
    let user = Key::generate();
    let data = Key::generate();
    let wrapped_user = master.wrap(&user);
    let wrapped_data = user.wrap(&data);
    let id = [5u8; 16];
    let sealed = seal(&data, id, b"scan of a letter", 4096);

    // Rotation: the user key is re-wrapped under a new master; the file and its wrap are untouched.
    let new_master = MasterKey(Key::generate());
    let rewrapped = master.rewrap(&wrapped_user, &new_master).expect("rewrap");
    assert!(new_master.unwrap(&wrapped_user).is_err(), "the old wrap does not open with the new master");
    let user_again = new_master.unwrap(&rewrapped).expect("user key");
    let data_again = user_again.unwrap(&wrapped_data).expect("data key");
    assert_eq!(open(&data_again, id, &sealed, 4096).expect("open"), b"scan of a letter");

    // Another user's key does not open the wrap; destroying the wraps makes the file unreadable.
    assert_eq!(Key::generate().unwrap(&wrapped_data).map(|_| ()), Err(VaultError::Unwrap));
    assert_eq!(format!("{data:?}"), "Key(..)", "keys never print their bytes");
}

#[test]
fn a_file_from_the_python_portal_is_opened_with_its_key() {
    // One whole Fernet token, as the Python portal wrote it (cryptography.fernet, fixed key).
    let key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let token = fernet::Fernet::new(key).expect("key").encrypt(b"%PDF-1.4 legacy record");
    assert_eq!(open_legacy(key, &token).expect("open"), b"%PDF-1.4 legacy record");
    assert!(open_legacy("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e5=", &token).is_err());
}

#[test]
fn offsets_are_computed_exactly_and_a_range_opens_from_its_frame() {
    let key = Key::generate();
    let id = [7u8; 16];
    for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 5 * FRAME, 5 * FRAME + 17] {
        let data = content(len);
        let sealed = seal(&key, id, &data, 13);
        assert_eq!(sealed_len(FRAME, len as u64), sealed.len() as u64, "length of {len} bytes");
        let (_, frames) = frames(&sealed);
        let mut at = 24u64;
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(frame_offset(FRAME, i as u64), at, "frame {i} of {len} bytes");
            at += f.len() as u64;
        }
        // Open from every frame on: the plaintext from that frame's first byte.
        for first in 0..frames.len() {
            let mut o = Opener::resume(&key, id, FRAME, first as u64);
            let mut out = Vec::new();
            o.push(&sealed[frame_offset(FRAME, first as u64) as usize..], &mut out).expect("opens");
            assert!(o.is_done());
            o.finish().expect("complete");
            assert_eq!(out, data[(first * FRAME).min(len)..], "from frame {first} of {len} bytes");
        }
    }
    // A frame opened as if it had another index is refused.
    let sealed = seal(&key, id, &content(3 * FRAME), 7);
    let mut o = Opener::resume(&key, id, FRAME, 0);
    let err = o.push(&sealed[frame_offset(FRAME, 1) as usize..], &mut Vec::new()).expect_err("out of place");
    assert_eq!(err, VaultError::Integrity(0));
}

#[test]
fn the_checker_finds_any_changed_byte_and_any_frame_out_of_place_without_opening() {
    let key = Key::generate();
    let id = [9u8; 16];
    let sealed = seal(&key, id, &content(3 * FRAME + 5), 11);
    let mut c = Checker::new(&key, id, FRAME, 0);
    c.push(&sealed[24..]).expect("intact");
    assert_eq!(c.index(), 4);
    c.finish().expect("whole frames");
    for at in (24..sealed.len()).step_by(7) {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        let mut c = Checker::new(&key, id, FRAME, 0);
        let found = c.push(&bad[24..]).is_err() || c.finish().is_err();
        assert!(found, "a change at byte {at} is found");
    }
    let other = Key::generate();
    assert!(Checker::new(&other, id, FRAME, 0).push(&sealed[24..]).is_err(), "another key's frames fail");
    // Frames out of place keep their MACs; their binding gives them away, before any opening.
    let (_, f) = frames(&sealed);
    let swapped = [f[0].clone(), f[2].clone(), f[1].clone(), f[3].clone()].concat();
    assert_eq!(Checker::new(&key, id, FRAME, 0).push(&swapped), Err(VaultError::Integrity(1)));
    assert!(Checker::new(&key, [1u8; 16], FRAME, 0).push(&sealed[24..]).is_err(), "another file's frames fail");
    let mut appended = sealed[24..].to_vec();
    appended.extend_from_slice(&f[3]);
    assert!(Checker::new(&key, id, FRAME, 0).push(&appended).is_err(), "nothing after the last frame");
}

#[test]
fn tags_match_under_one_key_and_differ_across_keys() {
    let a = Key::generate();
    let b = Key::generate();
    assert_eq!(a.tag(b"same content hash"), a.tag(b"same content hash"));
    assert_ne!(a.tag(b"same content hash"), a.tag(b"other content hash"));
    assert_ne!(a.tag(b"same content hash"), b.tag(b"same content hash"));
    assert_eq!(a.tag(b"x").len(), 64);
}

#[test]
fn every_frame_is_a_standard_fernet_token() {
    // The frames are written without the `fernet` crate (in place, no base64); any Fernet
    // implementation must still open them once they are base64-encoded.
    let key_text = fernet::Fernet::generate_key();
    let key = Key::from_text(&key_text).expect("key");
    let sealed = seal(&key, [3u8; 16], &content(2 * FRAME + 10), 50);
    let (_, frames) = frames(&sealed);
    let f = fernet::Fernet::new(&key_text).expect("fernet");
    for (i, frame) in frames.iter().enumerate() {
        let token = data_encoding::BASE64URL.encode(&frame[4..]);
        let plain = f.decrypt(&token).expect("a Fernet token");
        assert_eq!(plain[16..24], (i as u64).to_be_bytes(), "frame {i} carries its index");
    }
}

#[test]
fn frames_sealed_in_parts_side_by_side_make_the_same_stream() {
    let key = Key::generate();
    let id = [5u8; 16];
    for len in [1, FRAME, FRAME + 1, 4 * FRAME, 7 * FRAME + 3] {
        let data = content(len);
        // Split at a frame boundary, as two workers would, and join in order.
        let whole = (len - 1) / FRAME;
        let cut = whole / 2 * FRAME;
        let mut sealed = Vec::new();
        header(id, FRAME, &mut sealed);
        seal_frames(&key, id, FRAME, 0, &data[..cut], false, &mut sealed);
        seal_frames(&key, id, FRAME, (cut / FRAME) as u64, &data[cut..], true, &mut sealed);
        assert_eq!(open(&key, id, &sealed, 1000).expect("opens"), data, "{len} bytes");
        assert_eq!(sealed.len() as u64, sealed_len(FRAME, len as u64));
        let mut c = Checker::new(&key, id, FRAME, 0);
        c.push(&sealed[24..]).expect("checks");
    }
}
