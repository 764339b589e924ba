//! The on-disk cache of compiled components.
//!
//! A cache file is named after the component file and a hash of its bytes together
//! with the engine's compatibility hash (which covers the wasmtime version and the
//! compilation settings), so a changed component or a changed host recompiles.

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

    // The cache is read into memory rather than mapped: a file mapped by a running
    // host that someone truncates or rewrites in place would crash it (SIGBUS).
    if let Ok(bytes) = std::fs::read(&cache_file) {
        // SAFETY: `deserialize` trusts the bytes to be a compilation made by a
        // compatible wasmtime. The cache directory belongs to this host, the file
        // name carries the engine's compatibility hash, and wasmtime additionally
        // checks the header and the engine settings before using it.
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

fn store(component: &Component, dir: &Path, file: &Path, stem: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component
        .serialize()
        .map_err(anyhow::Error::from)
        .context("serializing the compiled component")?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
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
