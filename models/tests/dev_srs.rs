//! The on-disk cache of the INSECURE dev SRS: one file per (seed, k), written atomically, checked
//! on every hit, and regenerated (never used, never a panic) when damaged or of another seed.

use std::path::Path;

use halo2_base::halo2_proofs::poly::commitment::Params;
use models::srs::{dev, DevSrsCache, Srs};

fn bytes(srs: &Srs) -> Vec<u8> {
    let mut out = Vec::new();
    srs.params.write(&mut out).unwrap();
    out
}

fn get(cache: &DevSrsCache, k: u32, seed: u64) -> Srs {
    Srs::insecure_dev_with(cache, k, seed, None).unwrap()
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_miss_generates_and_caches_and_a_hit_loads_the_same_srs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DevSrsCache::at(dir.path());
    let path = cache.path(8, 5).unwrap();
    assert!(path.ends_with("insecure-dev-seed5-k8.srs") && !cache.contains(8, 5));
    let first = get(&cache, 8, 5);
    assert!(cache.contains(8, 5));
    let written = mtime(&path);
    let again = get(&cache, 8, 5);
    assert_eq!(mtime(&path), written, "a hit must not rewrite the file");
    assert_eq!((bytes(&again), &again.info), (bytes(&first), &first.info));
    assert_eq!(first.info, dev::generate(8, 5, None).unwrap().info);
    assert!(first.info.insecure && first.info.ceremony == "insecure-dev");
    // The cache file is a plain saved SRS: the fully checking loader accepts it.
    assert_eq!(Srs::load(&path).unwrap().info.sha256, first.info.sha256);
    // Other k and seeds get their own files; nothing temporary is left behind.
    get(&cache, 7, 5);
    get(&cache, 8, 6);
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["insecure-dev-seed5-k7.srs", "insecure-dev-seed5-k8.srs", "insecure-dev-seed6-k8.srs"]);
}

#[test]
fn damaged_or_foreign_cache_files_are_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DevSrsCache::at(dir.path());
    let good = get(&cache, 7, 9);
    let path = cache.path(7, 9).unwrap();
    let original = std::fs::read(&path).unwrap();
    let n = original.len();

    let mut flipped = original.clone();
    flipped[n - 300] ^= 0x10;
    let mut wrong_header = original.clone();
    let at = wrong_header.windows(12).position(|w| w == b"\"dev_seed\":9").expect("seed in the header");
    wrong_header[at + 11] = b'8';
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("flipped bit", flipped),
        ("truncated", original[..n / 2].to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"not an srs".to_vec()),
        ("header of another seed", wrong_header),
    ];
    for (what, content) in damaged {
        std::fs::write(&path, &content).unwrap();
        let srs = get(&cache, 7, 9);
        assert_eq!(srs.info, good.info, "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), original, "{what}: the file was not repaired");
    }

    // A well-framed file whose header claims seed 9 but whose points are seed 8's: caught by [τ]G2.
    let mut impostor = Srs::insecure_dev_with(&DevSrsCache::disabled(), 7, 8, None).unwrap();
    impostor.info.dev_seed = Some(9);
    impostor.save(&path).unwrap();
    assert_eq!(get(&cache, 7, 9).info, good.info);
    assert_eq!(std::fs::read(&path).unwrap(), original);
}

#[test]
fn an_unwritable_cache_still_gives_the_srs() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    // The cache directory would have to be inside a regular file.
    let cache = DevSrsCache::at(blocker.join("cache"));
    assert_eq!(get(&cache, 6, 1).info, dev::generate(6, 1, None).unwrap().info);
    assert!(matches!(Srs::insecure_dev_with(&cache, 0, 1, None), Err(models::Error::InvalidParams(_))));
}

#[test]
fn concurrent_misses_all_get_the_srs_and_leave_one_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DevSrsCache::at(dir.path());
    let infos: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| get(&cache, 9, 2).info)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(infos.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(Srs::load(&cache.path(9, 2).unwrap()).unwrap().info.sha256, infos[0].sha256);
}

/// Timings at k = 20 (run with `--ignored --nocapture`; ~1 GiB of memory): generation, a cache
/// hit, and the fully checking `Srs::load` of the same file for comparison.
#[test]
#[ignore]
fn k20_timings() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DevSrsCache::at(dir.path());
    let t = std::time::Instant::now();
    let generated = get(&cache, 20, 42);
    let generate_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let hit = get(&cache, 20, 42);
    let hit_s = t.elapsed().as_secs_f64();
    assert_eq!(hit.info, generated.info);
    let t = std::time::Instant::now();
    Srs::load(&cache.path(20, 42).unwrap()).unwrap();
    let full_s = t.elapsed().as_secs_f64();
    println!("dev SRS k = 20: generated and cached in {generate_s:.1} s; cache hit {hit_s:.2} s; full Srs::load check {full_s:.1} s");
}
