// One file, compiled twice: into the library (diagnostics of a failed native load) and, through
// RoslynCodeTaskFactory, into the build task that makes TorchSharp's native library load on hosts whose
// libstdc++ is older than the one it was linked against. Keep it free of library dependencies.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace TrainingForensics.Native
{
    /// <summary>One symbol-version requirement of an ELF shared object (an entry of .gnu.version_r).</summary>
    public sealed class ElfVersionNeed
    {
        public string Library { get; set; } = "";
        public string Version { get; set; } = "";
        public bool Weak { get; set; }
        /// <summary>Dynamic symbols bound to this version.</summary>
        public List<string> Symbols { get; } = new List<string>();
        /// <summary>How many relocations refer to those symbols; 0 means nothing is ever bound to them.</summary>
        public int RelocationUses { get; set; }
        internal long FlagsOffset { get; set; }
        public override string ToString() =>
            $"{Library} {Version}{(Weak ? " (weak)" : "")}: {Symbols.Count} symbol(s), {RelocationUses} relocation(s)";
    }

    /// <summary>
    /// Reads and edits the symbol-version tables of a little-endian ELF64 shared object.
    /// Why: a requirement such as GLIBCXX_3.4.32 is checked by the dynamic loader at load time even when the only
    /// symbol carrying it is never bound (GCC 13's iostream emits such a reference). Marking that requirement
    /// weak lets the object load on an older libstdc++ and changes nothing where the version exists.
    /// </summary>
    public static class ElfVersionNeeds
    {
        const uint ShtDynsym = 11, ShtRela = 4, ShtVerneed = 0x6ffffffe, ShtVersym = 0x6fffffff, ShtVerdef = 0x6ffffffd;
        const ushort VerFlgWeak = 0x2;

        public static List<ElfVersionNeed> Read(byte[] elf)
        {
            var sections = Sections(elf);
            var verneed = Find(sections, ShtVerneed);
            var result = new List<ElfVersionNeed>();
            if (verneed == null) return result;
            var byIndex = new Dictionary<int, ElfVersionNeed>();
            long strtab = sections[(int)verneed.Link].Offset;
            long vn = verneed.Offset;
            for (uint i = 0; i < verneed.Info; i++)
            {
                string file = CString(elf, strtab + U32(elf, vn + 4));
                long aux = vn + U32(elf, vn + 8);
                for (int j = 0; j < U16(elf, vn + 2); j++)
                {
                    var need = new ElfVersionNeed
                    {
                        Library = file,
                        Version = CString(elf, strtab + U32(elf, aux + 8)),
                        Weak = (U16(elf, aux + 4) & VerFlgWeak) != 0,
                        FlagsOffset = aux + 4,
                    };
                    byIndex[U16(elf, aux + 6) & 0x7fff] = need;
                    result.Add(need);
                    aux += U32(elf, aux + 12);
                }
                uint next = U32(elf, vn + 12);
                if (next == 0) break;
                vn += next;
            }

            var dynsym = Find(sections, ShtDynsym);
            var versym = Find(sections, ShtVersym);
            if (dynsym == null || versym == null) return result;
            long dynstr = sections[(int)dynsym.Link].Offset;
            long count = dynsym.Size / 24;
            var needOfSymbol = new ElfVersionNeed?[count];
            for (long s = 0; s < count; s++)
            {
                int index = U16(elf, versym.Offset + 2 * s) & 0x7fff;
                if (!byIndex.TryGetValue(index, out var need)) continue;
                needOfSymbol[s] = need;
                need.Symbols.Add(CString(elf, dynstr + U32(elf, dynsym.Offset + 24 * s)));
            }
            foreach (var rela in sections)
            {
                if (rela.Type != ShtRela || rela.Link >= sections.Count || sections[(int)rela.Link].Offset != dynsym.Offset) continue;
                for (long r = 0; r < rela.Size / 24; r++)
                {
                    long symbol = (long)(U64(elf, rela.Offset + 24 * r + 8) >> 32);
                    if (symbol > 0 && symbol < count && needOfSymbol[symbol] is { } used) used.RelocationUses++;
                }
            }
            return result;
        }

        /// <summary>Version names an object defines (.gnu.version_d), e.g. the GLIBCXX_* a libstdc++ provides.</summary>
        public static List<string> ReadDefinitions(byte[] elf)
        {
            var sections = Sections(elf);
            var verdef = Find(sections, ShtVerdef);
            var names = new List<string>();
            if (verdef == null) return names;
            long strtab = sections[(int)verdef.Link].Offset;
            long vd = verdef.Offset;
            for (uint i = 0; i < verdef.Info; i++)
            {
                long aux = vd + U32(elf, vd + 12);
                names.Add(CString(elf, strtab + U32(elf, aux)));
                uint next = U32(elf, vd + 16);
                if (next == 0) break;
                vd += next;
            }
            return names;
        }

        /// <summary>
        /// Marks weak every version requirement of <paramref name="library"/> whose symbols no relocation uses.
        /// Returns the versions it changed (already-weak ones are not counted).
        /// </summary>
        public static List<string> WeakenUnused(byte[] elf, string library)
        {
            var changed = new List<string>();
            foreach (var need in Read(elf))
            {
                if (need.Weak || need.RelocationUses > 0 || need.Library != library) continue;
                ushort flags = (ushort)(U16(elf, need.FlagsOffset) | VerFlgWeak);
                elf[need.FlagsOffset] = (byte)flags;
                elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
                changed.Add(need.Version);
            }
            return changed;
        }

        sealed class Section
        {
            public uint Type, Link, Info;
            public long Offset, Size;
        }

        static Section? Find(List<Section> sections, uint type)
        {
            foreach (var s in sections) if (s.Type == type) return s;
            return null;
        }

        static List<Section> Sections(byte[] elf)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file (bad magic)");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException("only little-endian 64-bit ELF is supported");
            long shoff = (long)U64(elf, 0x28);
            int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
            if (shoff <= 0 || shnum == 0 || shoff + (long)shentsize * shnum > elf.Length)
                throw new InvalidDataException("ELF section headers missing or truncated");
            var list = new List<Section>(shnum);
            for (int i = 0; i < shnum; i++)
            {
                long h = shoff + (long)i * shentsize;
                list.Add(new Section
                {
                    Type = U32(elf, h + 4), Offset = (long)U64(elf, h + 24), Size = (long)U64(elf, h + 32),
                    Link = U32(elf, h + 40), Info = U32(elf, h + 44),
                });
            }
            return list;
        }

        static ushort U16(byte[] b, long o) => (ushort)(b[o] | b[o + 1] << 8);
        static uint U32(byte[] b, long o) => (uint)(b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24);
        static ulong U64(byte[] b, long o) => U32(b, o) | (ulong)U32(b, o + 4) << 32;

        static string CString(byte[] b, long o)
        {
            long end = o;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)o, (int)(end - o));
        }
    }
}

#if !TRAININGFORENSICS_LIBRARY
namespace TrainingForensics.Build
{
    /// <summary>MSBuild task: writes a copy of each input with unused libstdc++ version requirements made weak.</summary>
    public class WeakenUnusedVersionNeeds : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Inputs { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();
        [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Outputs { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public override bool Execute()
        {
            for (int i = 0; i < Inputs.Length; i++)
            {
                string source = Inputs[i].ItemSpec, target = Outputs[i].ItemSpec;
                byte[] bytes = File.ReadAllBytes(source);
                var changed = TrainingForensics.Native.ElfVersionNeeds.WeakenUnused(bytes, "libstdc++.so.6");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                string temp = target + ".tmp";
                File.WriteAllBytes(temp, bytes);
                if (File.Exists(target)) File.Delete(target); // netstandard2.0 (MSBuild's task compiler) has no overwriting Move
                File.Move(temp, target);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                    $"TrainingForensics: {Path.GetFileName(source)}: weak unused version needs: {(changed.Count == 0 ? "none" : string.Join(", ", changed))}");
            }
            return !Log.HasLoggedErrors;
        }
    }
}
#endif
