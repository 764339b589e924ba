#!/usr/bin/env python3
"""Runs binaryen's wasm-opt over the core module inside the edge-api component, in place.

cargo's wasm32-wasip2 build links the component with wasm-component-ld, which embeds the
compiled core module as it is; wasm-opt cannot read components, so this takes the largest core
module out of the component's top-level sections, optimizes it with the features the Rust
target emits, and puts it back (its imports and exports are unchanged, so the component's other
sections still fit it). It takes about a tenth off the component gzipped (docs/benchmarks.md).

The optimized component is also kept beside it (`<file>.opt`, with `<file>.opt.sha256`: the
SHA-256 of the input it came from and of itself). A second run on the optimized file does
nothing; cargo putting the same unoptimized build back (it re-links its outputs) gets the kept
copy in a moment; a rebuilt component is optimized again (about a minute). The file is replaced,
never written through: cargo hard-links it to its own copy.

Usage: optimize-component.py <component.wasm> <wasm-opt binary>
"""

import hashlib
import os
import subprocess
import sys
import tempfile

# What rustc's wasm32-wasip2 target enables by default, so wasm-opt accepts the module and
# introduces nothing the host may not support.
FEATURES = [
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
]
CORE_MODULE_SECTION = 1
COMPONENT_PREAMBLE = b"\x00asm\x0d\x00\x01\x00"


def read_leb(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def write_leb(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sections(data):
    """The component's top-level sections as (id, header start, payload start, payload end)."""
    pos = len(COMPONENT_PREAMBLE)
    while pos < len(data):
        start = pos
        section_id = data[pos]
        size, pos = read_leb(data, pos + 1)
        yield section_id, start, pos, pos + size
        pos += size


def replace(path, content):
    """Puts `content` at `path` as a new file (never through a hard link)."""
    with open(path + ".tmp", "wb") as f:
        f.write(content)
    os.replace(path + ".tmp", path)


def main():
    component_path, wasm_opt = sys.argv[1], sys.argv[2]
    data = open(component_path, "rb").read()
    if not data.startswith(COMPONENT_PREAMBLE):
        sys.exit(f"{component_path}: not a WebAssembly component")
    kept, stamp = component_path + ".opt", component_path + ".opt.sha256"
    digest = hashlib.sha256(data).hexdigest()
    input_digest, output_digest = (
        open(stamp).read().split() if os.path.exists(stamp) else ("", "")
    )
    if digest == output_digest:
        return
    if digest == input_digest and os.path.exists(kept):
        replace(component_path, open(kept, "rb").read())
        return
    modules = [s for s in sections(data) if s[0] == CORE_MODULE_SECTION]
    if not modules:
        sys.exit(f"{component_path}: no core module inside")
    _, start, payload, end = max(modules, key=lambda s: s[3] - s[2])
    with tempfile.TemporaryDirectory() as tmp:
        original = os.path.join(tmp, "core.wasm")
        optimized = os.path.join(tmp, "core.opt.wasm")
        with open(original, "wb") as f:
            f.write(data[payload:end])
        subprocess.run(
            [wasm_opt, "-O3", *FEATURES, original, "-o", optimized],
            check=True,
        )
        core = open(optimized, "rb").read()
    out = (
        data[:start]
        + bytes([CORE_MODULE_SECTION])
        + write_leb(len(core))
        + core
        + data[end:]
    )
    with open(kept, "wb") as f:
        f.write(out)
    with open(stamp, "w") as f:
        f.write(f"{digest} {hashlib.sha256(out).hexdigest()}\n")
    replace(component_path, out)
    print(
        f"optimize-component: core module {end - payload} -> {len(core)} bytes",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
