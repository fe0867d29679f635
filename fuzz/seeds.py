#!/usr/bin/env python3
"""Seeds for the fuzz targets, cut from real Go binaries (stdlib only; objcopy for ELF seeds).

    python3 fuzz/seeds.py BINARY...          # gen-* seeds (large, git-ignored) from each binary
    python3 fuzz/seeds.py --small BINARY...  # the small committed seeds

BINARY: Go executables, e.g. the samples the tests build under target/go-samples/*/fanout.
Committed seeds stay small (corpus < 2 MB): build info sections, the build-id note, pclntabs cut
down to their first functions (a valid table of its own), and ELF files reduced by objcopy to
.go.buildinfo plus the DWARF sections the offset reader needs (amd64 only: arm64 DWARF is the
same format).
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def sections(d):
    shoff, = struct.unpack_from('<Q', d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', d, 0x3a)
    raw = [struct.unpack_from('<IIQQQQ', d, shoff + i * shentsize) for i in range(shnum)]
    stro = raw[shstrndx][4]
    out = {}
    for name, _typ, _flags, addr, off, size in raw:
        n = d[stro + name:d.index(b'\0', stro + name)].decode()
        out[n] = (addr, d[off:off + size])
    return out


def small_pclntab(tab, keep):
    """A valid table of the first `keep` functions: header, funcnametab, functab, _func pairs."""
    nfunc, = struct.unpack_from('<Q', tab, 8)
    fno, = struct.unpack_from('<Q', tab, 8 + 3 * 8)
    plo, = struct.unpack_from('<Q', tab, 8 + 7 * 8)
    keep = min(keep, nfunc)
    names, name_offs, entries = b'', [], []
    for i in range(keep):
        entry, funcoff = struct.unpack_from('<II', tab, plo + 8 * i)
        _, nameoff = struct.unpack_from('<Ii', tab, plo + funcoff)
        s = fno + nameoff
        name_offs.append(len(names))
        names += tab[s:tab.index(b'\0', s) + 1]
        entries.append(entry)
    end = struct.unpack_from('<I', tab, plo + 8 * keep)[0]
    header_len = 8 + 8 * 8
    new_fno = header_len
    new_plo = new_fno + len(names)
    new_plo += -new_plo % 8
    functab_len = (2 * keep + 1) * 4
    funcs_at = functab_len + (-functab_len % 8)
    out = bytearray(tab[:8])
    words = [keep, 0, struct.unpack_from('<Q', tab, 24)[0], new_fno, new_plo, new_plo, new_plo, new_plo]
    out += struct.pack('<8Q', *words)
    out += names
    out += b'\0' * (new_plo - len(out))
    functab = bytearray()
    funcs = bytearray()
    for i in range(keep):
        functab += struct.pack('<II', entries[i], funcs_at + len(funcs))
        funcs += struct.pack('<Ii', entries[i], name_offs[i]) + b'\0' * 8
    functab += struct.pack('<I', end)
    functab += b'\0' * (funcs_at - len(functab))
    return bytes(out + functab + funcs)


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main(argv):
    small = '--small' in argv
    prefix = 'small-' if small else 'gen-'
    for path in [a for a in argv if a != '--small']:
        d = open(path, 'rb').read()
        s = sections(d)
        tag = os.path.basename(os.path.dirname(path)) or os.path.basename(path)
        # target/go-samples/<sample>-go<version>-<variant>[-<arch>]-<hash>: drop the hash.
        tag = tag.rsplit('-', 1)[0] if tag.count('-') >= 3 else tag
        if '.go.buildinfo' in s:
            write('buildinfo', prefix + tag, s['.go.buildinfo'][1])
        if '.note.go.buildid' in s:
            write('buildinfo', prefix + 'note-' + tag, s['.note.go.buildid'][1])
        tab = (s.get('.gopclntab') or s.get('.data.rel.ro.gopclntab') or (0, b''))[1]
        if tab:
            write('pclntab', prefix + tag, small_pclntab(tab, 40) if small else tab)
        if '.debug_info' in s:
            out = os.path.join(HERE, 'corpus', 'dwarf_offsets', prefix + tag)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            # gimli reads each unit's line program header (.debug_line) when opening the unit.
            keep = ['.go.buildinfo', '.debug_abbrev', '.debug_info', '.debug_line', '.debug_addr',
                    '.debug_str_offsets', '.debug_line_str']
            if not small:
                keep += ['.gopclntab', '.text', '.go.module', '.noptrdata', '.symtab', '.strtab']
            args = ['objcopy'] + ['--only-section=' + k for k in keep] + [path, out]
            if subprocess.run(args, stderr=subprocess.DEVNULL).returncode != 0:
                # The host's objcopy may not know the architecture: retry as generic ELF.
                generic = args[:1] + ['-I', 'elf64-little', '-O', 'elf64-little'] + args[1:]
                if subprocess.run(generic, stderr=subprocess.DEVNULL).returncode != 0:
                    print(f'{path}: objcopy failed, no dwarf_offsets seed', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
