//! The tlog-tiles HTTP endpoint, read by an independent client: three real
//! nodes serve `/checkpoint`, `/tile/<L>/<N>[.p/<W>]` and
//! `/tile/entries/<N>[.p/<W>]`; the client verifies the note with the
//! voters' keys, rebuilds the root and proofs from tiles alone with the
//! `tlog_tiles` crate, and checks every entry against its tile hash.
use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{event, http_get, http_request, Cluster, HttpResponse};
use ironlog::ledger::checkpoint::{open_note, CheckpointBody};
use ironlog::ledger::event::LeafRecord;
use ironlog::ledger::merkle::{leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash};
use ironlog::proto;
use tokio::io::AsyncReadExt;

const FULL: &str = "public, max-age=31536000, immutable";

/// Appends events `from..to` through node `via` in batches of 100,
/// retrying while leadership settles.
async fn append(c: &Cluster, via: u64, from: u64, to: u64) {
    let mut n = from;
    while n < to {
        let hi = (n + 100).min(to);
        let events: Vec<_> = (n..hi).map(|i| event("alice", i)).collect();
        let mut attempt = 0;
        loop {
            let result = c
                .ledger(via)
                .await
                .append(proto::AppendRequest {
                    events: events.clone(),
                    wait_checkpoint: false,
                })
                .await;
            match result {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::Unavailable && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("append {n}..{hi} failed: {s}"),
            }
        }
        n = hi;
    }
}

/// Polls a node's `/checkpoint` until it has `size` leaves and a majority
/// of the voters' signatures; returns the verified body.
async fn wait_http_checkpoint(addr: SocketAddr, vkeys: &[String], size: u64) -> CheckpointBody {
    let mut last = None;
    for _ in 0..100 {
        let r = http_get(addr, "/checkpoint").await;
        if r.status == 200 {
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            assert_eq!(r.header("cache-control"), Some("no-store"));
            let (body, signers) = open_note(&r.body, vkeys).expect("the note verifies");
            assert!(
                signers.len() * 2 > vkeys.len(),
                "served only with a majority of signatures: {signers:?}"
            );
            if body.size == size {
                return body;
            }
            last = Some(body.size);
        } else {
            assert_eq!(r.status, 503, "{}", r.text());
            assert!(r.header("retry-after").is_some());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never served a checkpoint of size {size} (last: {last:?})");
}

fn hashes_of(tile: &[u8]) -> Vec<Hash> {
    assert_eq!(tile.len() % 32, 0, "a tile is whole hashes");
    tile.chunks(32).map(|h| h.try_into().unwrap()).collect()
}

/// Entry bundle parsing, written here rather than taken from the library,
/// so the test checks the wire format and not the code that made it.
fn entries_of(bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "length prefix");
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        assert!(rest.len() >= 2 + len, "entry {} fits", out.len());
        out.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    out
}

/// RFC 9162 MTH over leaf-level hashes, straight from the definition.
fn mth(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        1 => hashes[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&hashes[..k]), &mth(&hashes[k..]))
        }
    }
}

async fn fetch_ok(addr: SocketAddr, path: &str, cache: &str) -> Vec<u8> {
    let r = http_get(addr, path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("cache-control"), Some(cache), "GET {path}");
    r.body
}

fn assert_error(r: &HttpResponse, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    let text = r.text();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "{what}: one line, got {text:?}"
    );
}

/// A `tlog_tiles::TileReader` over tiles fetched beforehand: it fails on a
/// tile the client did not fetch, so the proofs below use only served tiles.
struct FetchedTiles(HashMap<String, Vec<u8>>);

impl tlog_tiles::TileReader for FetchedTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(&t.path())
                    .cloned()
                    .ok_or_else(|| tlog_tiles::Error::InvalidInput(t.path()))
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tiles_and_bundles_verify_against_the_signed_checkpoint() {
    let mut c = Cluster::start_with_http(3).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let vkeys = c.vkeys.clone();

    // Size 300: one full level-0 tile and a partial one of 44.
    append(&c, follower, 0, 300).await;
    let http = c.http_addr(leader);
    let old = wait_http_checkpoint(http, &vkeys, 300).await;
    fetch_ok(http, "/tile/0/000", FULL).await;
    let partial_44 = fetch_ok(http, "/tile/0/001.p/44", "public, max-age=60").await;
    assert_eq!(partial_44.len(), 44 * 32);
    for beyond in ["/tile/0/001", "/tile/0/001.p/45", "/tile/entries/001"] {
        assert_error(&http_get(http, beyond).await, 404, beyond);
    }

    // Size 600: level 0 is two full tiles and one of 88; level 1 one of 2.
    append(&c, follower, 300, 600).await;
    let mut bodies = Vec::new();
    for id in 1..=3 {
        bodies.push(wait_http_checkpoint(c.http_addr(id), &vkeys, 600).await);
    }
    let checkpoint = bodies[0].clone();
    assert!(bodies.iter().all(|b| *b == checkpoint), "nodes agree");

    // Read everything from a follower: every node serves the log.
    let http = c.http_addr(follower);
    let mut fetched = HashMap::new();
    let mut level0 = Vec::new();
    let mut leaves = Vec::new();
    for (n, width) in [(0u64, 256usize), (1, 256), (2, 88)] {
        let suffix = if width == 256 {
            String::new()
        } else {
            format!(".p/{width}")
        };
        let cache = if width == 256 {
            FULL
        } else {
            "public, max-age=60"
        };
        let tile = fetch_ok(http, &format!("/tile/0/{n:03}{suffix}"), cache).await;
        assert_eq!(tile.len(), width * 32, "tile 0/{n:03}");
        let bundle = fetch_ok(http, &format!("/tile/entries/{n:03}{suffix}"), cache).await;
        let entries = entries_of(&bundle);
        assert_eq!(entries.len(), width, "bundle {n}");
        let hashes = hashes_of(&tile);
        for (i, (entry, hash)) in entries.iter().zip(&hashes).enumerate() {
            let index = n * 256 + i as u64;
            assert_eq!(
                leaf_hash(entry),
                *hash,
                "entry {index} hashes to its tile hash"
            );
            let record = LeafRecord::decode(entry).expect("an Ironlog leaf");
            assert_eq!(record.index, index);
        }
        level0.extend(hashes);
        leaves.extend(entries);
        fetched.insert(format!("tile/8/0/{n:03}{suffix}"), tile);
    }
    // The bytes in a bundle are exactly the stored leaves gRPC serves.
    let grpc = c
        .ledger(follower)
        .await
        .get_entries(proto::GetEntriesRequest {
            start: 0,
            end: 600,
            linearizable: false,
        })
        .await
        .expect("get entries")
        .into_inner();
    let grpc_leaves: Vec<Vec<u8>> = grpc.entries.into_iter().map(|e| e.leaf).collect();
    assert_eq!(grpc_leaves, leaves);
    // A partial tile is a prefix that never changes.
    assert_eq!(
        fetch_ok(http, "/tile/0/001.p/44", "public, max-age=60").await,
        partial_44
    );

    // Level 1 holds the roots of the full level-0 tiles.
    let level1 = fetch_ok(http, "/tile/1/000.p/2", "public, max-age=60").await;
    assert_eq!(
        hashes_of(&level1),
        vec![mth(&level0[..256]), mth(&level0[256..512])]
    );
    fetched.insert("tile/8/1/000.p/2".to_string(), level1);

    // The root, from the tiles, is the signed one.
    assert_eq!(mth(&level0), checkpoint.root);
    let needed = tlog_tiles::Tile::new_tiles(8, 0, 600);
    assert_eq!(needed.len(), fetched.len(), "the client fetched every tile");
    let tiles = FetchedTiles(fetched);
    let reader = tlog_tiles::TileHashReader::new(600, tlog_tiles::Hash(checkpoint.root), &tiles);
    assert_eq!(
        tlog_tiles::tree_hash(600, &reader)
            .expect("tiles authenticate")
            .0,
        checkpoint.root
    );

    // Proofs built from tiles alone verify against the signed roots.
    for index in [0, 1, 255, 256, 300, 511, 512, 599] {
        let proof: Vec<Hash> = tlog_tiles::prove_record(600, index, &reader)
            .expect("inclusion proof from tiles")
            .into_iter()
            .map(|h| h.0)
            .collect();
        let leaf = leaf_hash(&leaves[index as usize]);
        verify_inclusion(index, 600, &leaf, &proof, &checkpoint.root)
            .unwrap_or_else(|e| panic!("leaf {index}: {e}"));
    }
    let old_root = tlog_tiles::tree_hash(300, &reader).expect("old root").0;
    assert_eq!(old_root, old.root);
    let consistency: Vec<Hash> = tlog_tiles::prove_tree(600, 300, &reader)
        .expect("consistency proof from tiles")
        .into_iter()
        .map(|h| h.0)
        .collect();
    verify_consistency(300, 600, &old.root, &checkpoint.root, &consistency)
        .expect("the log only grew");

    // Every node serves the same bytes.
    for id in 1..=3 {
        for path in ["/tile/0/001", "/tile/entries/002.p/88", "/tile/1/000.p/2"] {
            let r = http_get(c.http_addr(id), path).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body, http_get(http, path).await.body, "node {id} {path}");
        }
    }

    // HEAD is a GET without the body.
    let head = http_request(http, "HEAD", "/tile/0/000").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("8192"));
    assert!(head.body.is_empty());

    for bad in [
        "/tile/0/1",
        "/tile/0/0001",
        "/tile/0/x000/001",
        "/tile/0/001/002",
        "/tile/00/000",
        "/tile/64/000",
        "/tile/0/000.p/0",
        "/tile/0/000.p/256",
        "/tile/0/000.p/07",
        "/tile/entries/000.p/",
        "/tile/0/%30%30%30",
        "/tile/junk",
        "/tile/0/x018/x446/x744/x073/x709/x551/616",
    ] {
        assert_error(&http_get(http, bad).await, 400, bad);
    }
    for beyond in [
        "/tile/0/002",
        "/tile/0/002.p/89",
        "/tile/0/003",
        "/tile/1/000",
        "/tile/1/000.p/3",
        "/tile/2/000.p/1",
        "/tile/63/000.p/1",
        "/tile/entries/003.p/1",
        "/tile/0/x018/x446/x744/x073/x709/x551/615",
        "/add-entry",
        "/",
    ] {
        assert_error(&http_get(http, beyond).await, 404, beyond);
    }
    for (method, path) in [
        ("POST", "/checkpoint"),
        ("POST", "/tile/0/000"),
        ("PUT", "/tile/entries/000"),
        ("DELETE", "/checkpoint"),
        ("POST", "/add-entry"),
    ] {
        let r = http_request(http, method, path).await;
        assert_error(&r, 405, &format!("{method} {path}"));
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }

    // Stopping a node closes its idle HTTP connections and releases its
    // store: it restarts on the same ports and serves the same log.
    let mut idle = tokio::net::TcpStream::connect(http).await.unwrap();
    c.stop(follower).await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection is closed when the node stops: {read:?}"
    );
    c.restart(follower).await;
    let again = wait_http_checkpoint(http, &vkeys, 600).await;
    assert_eq!(again, checkpoint);
    assert_eq!(
        http_get(http, "/tile/0/000").await.body,
        http_get(c.http_addr(leader), "/tile/0/000").await.body
    );
}
