#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Lists the GPU code carried by built executables and checks it is exactly the configured list.

    cuda_architectures.py "CMAKE_CUDA_ARCHITECTURES" BINARY...   (the list separated by ; or ,)

Reads each binary's .nv_fatbin ELF section (one fat-binary container per CUDA translation unit)
and collects its entries: kind (SASS for a real architecture, PTX for a virtual one) and the
architecture number. Layout facts used (as cuobjdump shows them; cuobjdump is not part of the
pip-installed toolkit the project builds with): a container starts with the magic 0xBA55ED50, a
16-bit version, a 16-bit header size and a 64-bit size of the entries that follow; each entry
starts with a 16-bit kind (1 PTX, 2 ELF), a 32-bit header size at offset 4, a 64-bit payload size
at offset 8 and the 32-bit architecture number (90 for sm_90) at offset 28, its payload after its
header.

Expected from the CMake list: "90" means SASS and PTX for 90, "90-real" SASS only, "90-virtual"
PTX only (an arch-specific suffix, as in 90a, is compared by its number). Exit status 1 with the
difference named when a binary carries more or less than that.
"""
import re
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KINDS = {1: "PTX", 2: "SASS"}


def nv_fatbin_section(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def section(i):
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size
    _, str_off, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        end = data.index(b"\0", str_off + name)
        if data[str_off + name:end] == b".nv_fatbin":
            return data[offset:offset + size]
    return b""


def fatbin_entries(blob, path):
    found = set()
    pos = 0
    while pos + 16 <= len(blob):
        magic, _version, header_size, fat_size = struct.unpack_from("<IHHQ", blob, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # containers are 8-byte aligned; padding between them
            continue
        entry, end = pos + header_size, pos + header_size + fat_size
        if end > len(blob):
            raise ValueError(f"{path}: fat-binary container at {pos:#x} runs past its section")
        while entry < end:
            kind, = struct.unpack_from("<H", blob, entry)
            entry_header, payload = struct.unpack_from("<IQ", blob, entry + 4)
            arch, = struct.unpack_from("<I", blob, entry + 28)
            if kind not in KINDS or entry_header < 32 or entry + entry_header + payload > end:
                raise ValueError(f"{path}: unreadable fat-binary entry at {entry:#x} (kind {kind})")
            found.add((KINDS[kind], arch))
            entry += entry_header + payload
        pos = (end + 7) & ~7
    return found


def expected(cmake_list):
    want = set()
    for item in filter(None, re.split(r"[;,]", cmake_list)):
        m = re.fullmatch(r"(\d+)[a-z]?(?:-(real|virtual))?", item.strip())
        if not m:
            raise ValueError(f"unrecognised CUDA architecture entry '{item}'")
        arch, only = int(m.group(1)), m.group(2)
        if only != "virtual":
            want.add(("SASS", arch))
        if only != "real":
            want.add(("PTX", arch))
    return want


def describe(entries):
    return ", ".join(f"{'sm' if kind == 'SASS' else 'compute'}_{arch} ({kind})" for kind, arch in sorted(entries, key=lambda e: (e[1], e[0])))


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    want = expected(argv[1])
    print(f"configured: {argv[1]} -> {describe(want)}")
    ok = True
    for path in argv[2:]:
        try:
            have = fatbin_entries(nv_fatbin_section(path), path)
        except (OSError, ValueError) as e:
            print(f"FAIL: {e}")
            ok = False
            continue
        print(f"{path}: {describe(have) or 'no GPU code'}")
        if have != want:
            ok = False
            if want - have:
                print(f"FAIL: {path} lacks {describe(want - have)}")
            if have - want:
                print(f"FAIL: {path} carries unconfigured {describe(have - want)}")
    print("architectures match" if ok else "architectures differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
