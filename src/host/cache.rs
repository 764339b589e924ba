//! The on-disk cache of compiled components.
//!
//! A cache file is named after the component file and a hash of its bytes together
//! with the engine's compatibility hash (which covers the wasmtime version and the
//! compilation settings), so a changed component or a changed host recompiles.
//!
//! A cached compilation is native code the host runs, so it is only trusted from a directory
//! and a file that this user owns and nobody else can write (the directory is created 0700);
//! otherwise the component is compiled and nothing is cached.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::Component;
use wasmtime::Engine;

/// A loaded component and how it was obtained.
pub(crate) struct Loaded {
    pub(crate) component: Component,
    /// Whether it came from the cache (no compilation).
    pub(crate) from_cache: bool,
    pub(crate) elapsed: Duration,
    pub(crate) cache_file: PathBuf,
}

/// A 128-bit hex key over the component bytes and the engine's compatibility hash.
pub(crate) fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let half = |seed: u64| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        wasm.len().hash(&mut h);
        wasm.hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(0x5350_494e), half(0x4544_4745))
}

/// Loads the compiled form of the component at `wasm_path` from `cache_dir`, or
/// compiles it and stores the compilation there (atomically: temp file + rename).
/// A cache file that does not load is recompiled and overwritten.
pub(crate) fn load_or_compile(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let wasm = std::fs::read(wasm_path)
        .with_context(|| format!("reading component {}", wasm_path.display()))?;
    let stem = wasm_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component");
    let cache_file = cache_dir.join(format!("{stem}-{}.cwasm", cache_key(engine, &wasm)));

    let trusted_dir = private_to_us(cache_dir, Kind::Dir);
    if let Err(why) = &trusted_dir {
        if cache_dir.exists() {
            tracing::warn!(target: "edgemeet::host", dir = %cache_dir.display(), why, "compilation cache not used: others could write it");
        }
    }
    // The cache is read into memory rather than mapped: a file mapped by a running
    // host that someone truncates or rewrites in place would crash it (SIGBUS).
    let cached = trusted_dir
        .is_ok()
        .then(|| private_to_us(&cache_file, Kind::File).ok())
        .flatten()
        .and_then(|()| std::fs::read(&cache_file).ok());
    if let Some(bytes) = cached {
        // SAFETY: `deserialize` trusts the bytes to be a compilation made by a
        // compatible wasmtime. The directory and the file were checked to be this
        // user's and writable by nobody else, the file name carries the engine's
        // compatibility hash, and wasmtime additionally checks the header and the
        // engine settings before using it.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => {
                return Ok(Loaded {
                    component,
                    from_cache: true,
                    elapsed: started.elapsed(),
                    cache_file,
                })
            }
            Err(e) => tracing::warn!(
                target: "edgemeet::host",
                file = %cache_file.display(),
                error = %format!("{e:#}"),
                "cached compilation unusable; recompiling"
            ),
        }
    }

    let component = Component::from_binary(engine, &wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling component {}", wasm_path.display()))?;
    if let Err(e) = store(&component, cache_dir, &cache_file, stem) {
        // The host works without the cache; it only costs a compile next start.
        tracing::warn!(target: "edgemeet::host", dir = %cache_dir.display(), error = %format!("{e:#}"), "could not write the compilation cache");
    }
    Ok(Loaded {
        component,
        from_cache: false,
        elapsed: started.elapsed(),
        cache_file,
    })
}

/// What [`private_to_us`] expects to find.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// Ok when `path` is a `kind` (not a symlink) owned by this user and writable by nobody else.
fn private_to_us(path: &Path, kind: Kind) -> Result<(), &'static str> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path).map_err(|_| "missing")?;
    let right_kind = match kind {
        Kind::Dir => meta.file_type().is_dir(),
        Kind::File => meta.file_type().is_file(),
    };
    if !right_kind {
        return Err("not a plain directory or file");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err("owned by another user");
    }
    if meta.mode() & 0o022 != 0 {
        return Err("writable by group or others");
    }
    Ok(())
}

fn store(component: &Component, dir: &Path, file: &Path, stem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    private_to_us(dir, Kind::Dir).map_err(|why| anyhow::anyhow!("{}: {why}", dir.display()))?;
    let bytes = component
        .serialize()
        .map_err(anyhow::Error::from)
        .context("serializing the compiled component")?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    // A new file only (no following a planted symlink), readable by this user alone.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut out| out.write_all(&bytes))
        .with_context(|| format!("writing {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming into {}", file.display()));
    }
    // Older compilations of the same component are dead weight.
    if let Ok(entries) = std::fs::read_dir(dir) {
        let prefix = format!("{stem}-");
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = name.starts_with(&prefix)
                && name.ends_with(".cwasm")
                && name[prefix.len()..name.len() - ".cwasm".len()]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
                && path != file;
            if stale {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Only a cache this user alone can write is read: a directory or a file others could
    /// have written means compiling again (and, for the directory, caching nothing).
    #[test]
    fn a_cache_others_can_write_is_not_trusted() {
        let root = std::env::temp_dir().join(format!(
            "edgemeet-cache-test-{}-{}",
            std::process::id(),
            cache_key(&Engine::default(), b"unique")
        ));
        std::fs::create_dir_all(&root).expect("root");
        let wasm = root.join("empty.wasm");
        std::fs::write(&wasm, EMPTY_COMPONENT).expect("component");
        let dir = root.join("cache");
        let engine = Engine::default();

        let first = load_or_compile(&engine, &wasm, &dir).expect("compile");
        assert!(!first.from_cache);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&first.cache_file), 0o600);
        assert!(
            load_or_compile(&engine, &wasm, &dir)
                .expect("load")
                .from_cache
        );

        chmod(&first.cache_file, 0o666);
        assert!(
            !load_or_compile(&engine, &wasm, &dir)
                .expect("load")
                .from_cache
        );
        // Recompiled and stored again, privately.
        assert_eq!(mode(&first.cache_file), 0o600);

        chmod(&dir, 0o777);
        let untrusted = load_or_compile(&engine, &wasm, &dir).expect("load");
        assert!(!untrusted.from_cache);
        chmod(&dir, 0o700);
        assert!(
            load_or_compile(&engine, &wasm, &dir)
                .expect("load")
                .from_cache
        );

        std::fs::remove_file(&first.cache_file).expect("remove");
        std::os::unix::fs::symlink(&wasm, &first.cache_file).expect("symlink");
        assert!(private_to_us(&first.cache_file, Kind::File).is_err());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
