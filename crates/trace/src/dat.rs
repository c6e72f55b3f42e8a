//! trace-cmd's binary `trace.dat`, versions 6 and 7 (zlib or zstd compressed), read natively.
//!
//! Why our own reader: the Rust readers that exist are either a wrapper of the C libtracecmd
//! (`libtracecmd`: bindgen and the system libraries at build time) or not published (LISA's
//! `traceevent`). Replay needs a small part of the format: the headers, the event formats, the
//! saved command lines, kallsyms for `%ps` fields and the per-CPU ring-buffer pages. That part is
//! here, in one streaming pass whose memory is one page (or one compressed chunk) per CPU plus the
//! metadata, never the trace. Decompression uses maintained crates: `flate2` (zlib) and `zstd`
//! (libzstd: measured back to back with `ctxtrack bench dat`, the pure-Rust `ruzstd` left the
//! binary replay slower than the text replay of the same events, 0.87x against 1.06x).
//!
//! Layout facts (trace-cmd `trace-cmd.dat.v6/v7` documentation, `lib/trace-cmd/trace-input.c`,
//! libtraceevent `kbuffer-parse.c`) are summarized where they are used. Records are merged across
//! CPUs by timestamp, ties to the lower CPU, as `tracecmd_read_next_data()` does, and rendered as
//! the [`Line`]s `trace-cmd report -l -t` prints, so that the replay of a `trace.dat` and of its
//! report text are the same computation ([`for_each_line`]).
//!
//! Errors name the byte offset in the file and what was expected; nothing here panics on input.

use crate::line::{Flags, Line};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;

/// A problem in a `trace.dat`: where (byte offset in the file) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatError {
    /// Byte offset in the file (in the decompressed section for compressed metadata, with the
    /// section's own offset named in `msg`).
    pub offset: u64,
    /// What was expected.
    pub msg: String,
}

impl std::fmt::Display for DatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.msg)
    }
}

fn err<T>(offset: u64, msg: impl Into<String>) -> Result<T, DatError> {
    Err(DatError {
        offset,
        msg: msg.into(),
    })
}

/// Refuse metadata larger than this (a corrupt size field must not allocate gigabytes).
const MAX_META: u64 = 256 << 20;
/// Largest page / chunk we accept.
const MAX_PAGE: u32 = 1 << 20;
const MAX_CHUNK: u32 = 64 << 20;

/// `trace.dat` starts with these 10 bytes (`TRACECMD_MAGIC` + "tracing").
pub const MAGIC: &[u8; 10] = b"\x17\x08\x44tracing";

/// Is `head` the start of a `trace.dat`?
pub fn is_dat(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Compression of a version 7 file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `none` (and every version 6 file).
    None,
    /// `zlib`: RFC 1950 streams (`compress2()`).
    Zlib,
    /// `zstd`: frames without a content size.
    Zstd,
}

fn decompress(c: Compression, data: &[u8], out_len: usize, at: u64) -> Result<Vec<u8>, DatError> {
    let mut out = Vec::with_capacity(out_len);
    let r = match c {
        Compression::None => {
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Zlib => flate2::read::ZlibDecoder::new(data)
            .take(out_len as u64 + 1)
            .read_to_end(&mut out)
            .map(|_| ()),
        Compression::Zstd => match zstd::bulk::decompress(data, out_len) {
            Ok(v) => {
                out = v;
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = r {
        return err(at, format!("compressed data that decompresses ({e})"));
    }
    if out.len() != out_len {
        return err(
            at,
            format!(
                "a block that decompresses to the {out_len} bytes its header says (got {})",
                out.len()
            ),
        );
    }
    Ok(out)
}

/// Little helper over a byte slice with the file's endianness and error offsets.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    /// File offset of `b[0]` (for errors).
    base: u64,
    big: bool,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8], base: u64, big: bool) -> Cur<'a> {
        Cur {
            b,
            pos: 0,
            base,
            big,
        }
    }
    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DatError> {
        if self.b.len() - self.pos < n {
            return err(
                self.at(),
                format!("{what} ({n} bytes; the data ends first)"),
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// An `N`-byte unsigned integer in the file's byte order ([`get`]).
    fn uint(&mut self, n: usize, what: &str) -> Result<u64, DatError> {
        let big = self.big;
        Ok(get(self.take(n, what)?, 0, n, big).expect("n bytes taken"))
    }
    fn u16(&mut self, what: &str) -> Result<u16, DatError> {
        Ok(self.uint(2, what)? as u16)
    }
    fn u32(&mut self, what: &str) -> Result<u32, DatError> {
        Ok(self.uint(4, what)? as u32)
    }
    fn u64(&mut self, what: &str) -> Result<u64, DatError> {
        self.uint(8, what)
    }
    fn cstr(&mut self, what: &str) -> Result<&'a str, DatError> {
        let rest = &self.b[self.pos..];
        let Some(n) = rest.iter().position(|&c| c == 0) else {
            return err(
                self.at(),
                format!("{what} (a NUL-terminated string; the data ends first)"),
            );
        };
        let s = std::str::from_utf8(&rest[..n])
            .or_else(|_| err(self.at(), format!("{what} (UTF-8 text)")))?;
        self.pos += n + 1;
        Ok(s)
    }
    /// `size` (u32 or u64) followed by that many bytes of text.
    fn sized_text(&mut self, wide: bool, what: &str) -> Result<&'a str, DatError> {
        let at = self.at();
        let n = if wide {
            self.u64(what)?
        } else {
            u64::from(self.u32(what)?)
        };
        if n > MAX_META {
            return err(at, format!("{what}: a plausible size (got {n})"));
        }
        let b = self.take(n as usize, what)?;
        // Kernel text is ASCII; tolerate stray bytes rather than refusing the file.
        Ok(std::str::from_utf8(b)
            .unwrap_or_else(|e| std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or("")))
    }
}

/// How a field is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    /// `char name[N]`.
    Chars,
    /// `__data_loc char[] name` (offset in the low 16 bits, length in the high 16).
    DataLocStr,
    /// `__rel_loc char[] name`: offset from the end of the field.
    RelLocStr,
    /// Any other array or dynamic field (printed as its size).
    Other,
    /// A pointer printed with `%ps` / `%pS` (resolved with kallsyms).
    Sym,
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    offset: usize,
    size: usize,
    signed: bool,
    kind: Kind,
}

/// One event's `format` file.
#[derive(Clone, Debug)]
struct Format {
    name: String,
    fields: Vec<Field>,
    /// `__print_symbolic` / `__print_flags` tables by field name.
    symbols: BTreeMap<String, (bool, Vec<(u64, String)>)>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Common {
    flags: Option<(usize, usize)>,
    preempt: Option<(usize, usize)>,
    pid: Option<(usize, usize)>,
}

fn parse_format(text: &str, common: &mut Common) -> Option<(u16, Format)> {
    let mut name = None;
    let mut id = None;
    let mut fields = Vec::new();
    let mut print = "";
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("ID:") {
            id = v.trim().parse::<u16>().ok();
        } else if let Some(v) = l.strip_prefix("print fmt:") {
            print = v;
        } else if let Some(v) = l.strip_prefix("field:") {
            // `field:unsigned short common_type;	offset:0;	size:2;	signed:0;`
            let mut parts = v.split(';');
            let decl = parts.next()?.trim();
            let mut offset = None;
            let mut size = None;
            let mut signed = false;
            for p in parts {
                let p = p.trim();
                if let Some(x) = p.strip_prefix("offset:") {
                    offset = x.parse::<usize>().ok();
                } else if let Some(x) = p.strip_prefix("size:") {
                    size = x.parse::<usize>().ok();
                } else if let Some(x) = p.strip_prefix("signed:") {
                    signed = x == "1";
                }
            }
            let (offset, size) = (offset?, size?);
            let base = decl.split('[').next().unwrap_or(decl);
            let fname = base.rsplit([' ', '*']).next().unwrap_or(base).to_string();
            let kind = if decl.starts_with("__data_loc") {
                if decl.contains("char") {
                    Kind::DataLocStr
                } else {
                    Kind::Other
                }
            } else if decl.starts_with("__rel_loc") {
                if decl.contains("char") {
                    Kind::RelLocStr
                } else {
                    Kind::Other
                }
            } else if decl.contains('[') {
                if decl.starts_with("char ") || decl.starts_with("unsigned char ") {
                    Kind::Chars
                } else {
                    Kind::Other
                }
            } else {
                Kind::Int
            };
            match fname.as_str() {
                "common_flags" => common.flags = Some((offset, size)),
                "common_preempt_count" => common.preempt = Some((offset, size)),
                "common_pid" => common.pid = Some((offset, size)),
                f if f.starts_with("common_") => {}
                _ => fields.push(Field {
                    name: fname,
                    offset,
                    size,
                    signed,
                    kind,
                }),
            }
        }
    }
    let mut f = Format {
        name: name?,
        fields,
        symbols: BTreeMap::new(),
    };
    parse_print_fmt(print, &mut f);
    Some((id?, f))
}

/// The parts of `print fmt` replay needs: `%ps` fields and symbolic tables.
fn parse_print_fmt(p: &str, f: &mut Format) {
    // Pair each conversion in the format string with its argument, in order.
    let Some(q1) = p.find('"') else { return };
    let Some(q2) = p[q1 + 1..].find('"').map(|i| q1 + 1 + i) else {
        return;
    };
    let fmt = &p[q1 + 1..q2];
    let convs: Vec<&str> = fmt
        .split('%')
        .skip(1)
        .filter(|c| !c.is_empty() && !c.starts_with('%'))
        .collect();
    let args = split_args(&p[q2 + 1..]);
    for (conv, arg) in convs.iter().zip(args.iter()) {
        let field_of = |a: &str| -> Option<String> {
            let i = a.find("REC->")? + 5;
            Some(
                a[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            )
        };
        if conv.starts_with("ps") || conv.starts_with("pS") {
            if let Some(name) = field_of(arg) {
                if let Some(fl) = f.fields.iter_mut().find(|x| x.name == name) {
                    fl.kind = Kind::Sym;
                }
            }
        }
        // `__print_symbolic(REC->f, {v, "name"}, ...)` / `__print_flags(...)`, possibly inside a
        // conditional (sched_switch's prev_state).
        let a = arg.trim();
        let found = a
            .find("__print_symbolic(")
            .map(|i| (i, false))
            .or_else(|| a.find("__print_flags(").map(|i| (i, true)));
        if let Some((i, flags)) = found {
            let call = &a[i..];
            if let Some(name) = field_of(call) {
                let mut table = Vec::new();
                for entry in call.split('{').skip(1) {
                    let body = entry.split('}').next().unwrap_or("");
                    let Some((v, s)) = body.rsplit_once(',') else {
                        continue;
                    };
                    let s = s.trim().trim_matches('"').to_string();
                    if let Some(val) = eval_const(v) {
                        table.push((val, s));
                    }
                }
                f.symbols.insert(name, (flags, table));
            }
        }
    }
}

/// Evaluates a constant C expression of a `print fmt` table: numbers (hex or decimal),
/// parentheses, `<<`, `|`, `+`, `-`. `None` for anything else (a symbol the kernel did not
/// expand).
fn eval_const(s: &str) -> Option<u64> {
    fn expr(t: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = shift(t, i)?;
        loop {
            ws(t, i);
            if *i < t.len() && t[*i] == b'|' {
                *i += 1;
                v |= shift(t, i)?;
            } else {
                return Some(v);
            }
        }
    }
    fn shift(t: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = sum(t, i)?;
        loop {
            ws(t, i);
            if t.get(*i..*i + 2) == Some(b"<<") {
                *i += 2;
                v = v.checked_shl(u32::try_from(sum(t, i)?).ok()?)?;
            } else {
                return Some(v);
            }
        }
    }
    fn sum(t: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = atom(t, i)?;
        loop {
            ws(t, i);
            match t.get(*i) {
                Some(b'+') => {
                    *i += 1;
                    v = v.wrapping_add(atom(t, i)?);
                }
                Some(b'-') => {
                    *i += 1;
                    v = v.wrapping_sub(atom(t, i)?);
                }
                _ => return Some(v),
            }
        }
    }
    fn atom(t: &[u8], i: &mut usize) -> Option<u64> {
        ws(t, i);
        if t.get(*i) == Some(&b'(') {
            // nesting bounded by the input's length; refuse absurd depths (a corrupt file)
            if t[..*i].iter().filter(|&&c| c == b'(').count() > 32 {
                return None;
            }
            *i += 1;
            let v = expr(t, i)?;
            ws(t, i);
            if t.get(*i) != Some(&b')') {
                return None;
            }
            *i += 1;
            return Some(v);
        }
        let start = *i;
        while *i < t.len() && (t[*i].is_ascii_alphanumeric()) {
            *i += 1;
        }
        let w = std::str::from_utf8(&t[start..*i]).ok()?;
        let w = w.trim_end_matches(['U', 'L', 'u', 'l']);
        if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()
        } else {
            w.parse().ok()
        }
    }
    fn ws(t: &[u8], i: &mut usize) {
        while *i < t.len() && t[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    let t = s.trim().as_bytes();
    let mut i = 0;
    let v = expr(t, &mut i)?;
    ws(t, &mut i);
    (i == t.len()).then_some(v)
}

/// Splits `, a, f(b, c), d` at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let mut in_str = false;
    for ch in s.chars() {
        match ch {
            '"' => in_str = !in_str,
            '(' | '{' if !in_str => depth += 1,
            ')' | '}' if !in_str => depth -= 1,
            ',' if depth == 0 && !in_str => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Where one CPU's ring-buffer pages are.
#[derive(Clone, Copy, Debug)]
struct CpuData {
    cpu: u32,
    offset: u64,
    size: u64,
}

/// Where the bytes are: a file (read with `pread`, no shared cursor) or memory (tests, fuzzing).
enum Src {
    File(std::fs::File),
    Mem(Vec<u8>),
}

/// The file's metadata (everything but the ring-buffer pages).
pub struct Dat {
    src: Src,
    len: u64,
    /// File version (6 or 7).
    pub version: u32,
    big: bool,
    /// Ring-buffer page size.
    pub page_size: u32,
    /// Kernel `long` size (from header_page's `commit`).
    kernel_long: usize,
    /// v7 compression.
    pub compression: Compression,
    formats: BTreeMap<u16, Format>,
    common: Common,
    cmdlines: BTreeMap<i32, String>,
    /// Sorted (address, name).
    /// kallsyms, parsed on the first `%ps` field rendered (megabytes that most replays never
    /// need): the v6 text kept as read, or the v7 section's offset.
    kallsyms_src: Option<KallsymsSrc>,
    kallsyms: std::cell::OnceCell<Syms>,
    cpus: Vec<CpuData>,
    /// Trace clock name (`global`, `local`, ...).
    pub clock: String,
    /// Timestamp offset in ns (OFFSET option).
    ts_offset: i64,
}

impl Dat {
    /// Opens `path` and reads its metadata.
    pub fn open(path: &std::path::Path) -> Result<Dat, DatError> {
        let file =
            std::fs::File::open(path).or_else(|e| err(0, format!("a readable file ({e})")))?;
        let len = file
            .metadata()
            .or_else(|e| err(0, format!("a readable file ({e})")))?
            .len();
        Dat::new(Src::File(file), len)
    }

    /// Reads the metadata of a `trace.dat` held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Dat, DatError> {
        let len = bytes.len() as u64;
        Dat::new(Src::Mem(bytes), len)
    }

    fn new(src: Src, len: u64) -> Result<Dat, DatError> {
        let mut d = Dat {
            src,
            len,
            version: 0,
            big: false,
            page_size: 0,
            kernel_long: 8,
            compression: Compression::None,
            formats: BTreeMap::new(),
            common: Common::default(),
            cmdlines: BTreeMap::new(),
            kallsyms_src: None,
            kallsyms: std::cell::OnceCell::new(),
            cpus: Vec::new(),
            clock: "local".into(),
            ts_offset: 0,
        };
        d.read_headers()?;
        Ok(d)
    }

    fn read(&self, off: u64, n: u64, what: &str) -> Result<Vec<u8>, DatError> {
        if off > self.len || self.len - off < n {
            return err(
                off,
                format!(
                    "{what} ({n} bytes; the file ends at byte {}: truncated?)",
                    self.len
                ),
            );
        }
        match &self.src {
            Src::File(f) => {
                let mut b = vec![0; n as usize];
                f.read_exact_at(&mut b, off)
                    .or_else(|e| err(off, format!("{what} ({e})")))?;
                Ok(b)
            }
            Src::Mem(m) => Ok(m[off as usize..(off + n) as usize].to_vec()),
        }
    }

    fn read_headers(&mut self) -> Result<(), DatError> {
        let head_len = self.len.min(MAX_META + 64);
        // v6 metadata is sequential from the start; read it in growing windows.
        let first = self.read(0, head_len.min(64), "the file header")?;
        if !is_dat(&first) {
            return err(
                0,
                "trace-cmd's magic `\\x17\\x08\\x44tracing` (not a trace.dat)",
            );
        }
        let mut c = Cur {
            b: &first,
            pos: 10,
            base: 0,
            big: false,
        };
        let v = c.cstr("the file version")?;
        self.version = v
            .parse()
            .or_else(|_| err(10, format!("a file version number, found `{v}`")))?;
        if !(6..=7).contains(&self.version) {
            return err(10, format!("file version 6 or 7 (found {})", self.version));
        }
        let e = c.take(1, "the endianness byte")?[0];
        self.big = match e {
            0 => false,
            1 => true,
            x => return err(c.at() - 1, format!("endianness 0 or 1 (found {x})")),
        };
        c.big = self.big;
        c.take(1, "the user long size")?;
        let ps_at = c.at();
        self.page_size = c.u32("the page size")?;
        if self.page_size < 32 || self.page_size > MAX_PAGE {
            return err(
                ps_at,
                format!(
                    "a page size from 32 to {MAX_PAGE} (found {})",
                    self.page_size
                ),
            );
        }
        let after = c.at();
        if self.version == 6 {
            // The metadata runs up to the CPU data; read a window and grow it while the
            // parse runs off its end (kallsyms can be megabytes).
            let mut window = 1u64 << 20;
            loop {
                let n = (self.len - after).min(window);
                let body = self.read(after, n, "the metadata")?;
                let mut c = Cur::new(&body, after, self.big);
                self.formats.clear();
                self.kallsyms_src = None;
                self.cmdlines.clear();
                self.cpus.clear();
                match self.v6_body(&mut c) {
                    Err(e)
                        if e.msg.contains("the data ends first")
                            && n < self.len - after
                            && window < MAX_META =>
                    {
                        window *= 4;
                    }
                    r => return r,
                }
            }
        } else {
            let body = self.read(
                after,
                (self.len - after).min(4096),
                "the compression header",
            )?;
            let mut c = Cur::new(&body, after, self.big);
            let name = c.cstr("the compression name")?;
            self.compression = match name {
                "none" => Compression::None,
                "zlib" => Compression::Zlib,
                "zstd" => Compression::Zstd,
                x => {
                    return err(
                        after,
                        format!("compression none, zlib or zstd (found `{x}`)"),
                    )
                }
            };
            c.cstr("the compression version")?;
            let opt = c.u64("the offset of the first options section")?;
            self.v7_sections(opt)
        }
    }

    fn v6_body(&mut self, c: &mut Cur<'_>) -> Result<(), DatError> {
        self.header_info(c)?;
        // ftrace's own events
        let n = c.u32("the number of ftrace event formats")?;
        for _ in 0..n {
            let t = c.sized_text(true, "an ftrace event format")?;
            self.add_format(t);
        }
        let systems = c.u32("the number of event systems")?;
        for _ in 0..systems {
            c.cstr("an event system name")?;
            let n = c.u32("the number of formats in a system")?;
            for _ in 0..n {
                let t = c.sized_text(true, "an event format")?;
                self.add_format(t);
            }
        }
        let k = c.sized_text(false, "kallsyms")?;
        self.kallsyms_src = Some(KallsymsSrc::Text(k.to_string()));
        c.sized_text(false, "printk formats")?;
        let cl = c.sized_text(true, "saved cmdlines")?;
        self.cmdlines(cl);
        let ncpus = c.u32("the CPU count")?;
        if ncpus > 8192 {
            return err(c.at() - 4, format!("a plausible CPU count (found {ncpus})"));
        }
        let mut kind = c.take(10, "`options  ` or `flyrecord`")?;
        if kind == b"options  \0" {
            loop {
                let id = c.u16("an option id")?;
                if id == 0 {
                    break;
                }
                let size = c.u32("an option size")?;
                let data = c.take(size as usize, "an option's data")?;
                self.option(id, data, c.at() - u64::from(size))?;
            }
            kind = c.take(10, "`flyrecord` or `latency  `")?;
        }
        if kind == b"latency  \0" {
            return err(
                c.at() - 10,
                "a flyrecord trace (this file holds latency-tracer text)",
            );
        }
        if kind != b"flyrecord\0" {
            return err(c.at() - 10, "`flyrecord`");
        }
        for cpu in 0..ncpus {
            let offset = c.u64("a CPU data offset")?;
            let size = c.u64("a CPU data size")?;
            self.cpus.push(CpuData { cpu, offset, size });
        }
        Ok(())
    }

    fn header_info(&mut self, c: &mut Cur<'_>) -> Result<(), DatError> {
        if c.take(12, "`header_page`")? != b"header_page\0" {
            return err(c.at() - 12, "`header_page`");
        }
        let hp = c.sized_text(true, "the header_page format")?;
        // `field: local_t commit;	offset:8;	size:8;	signed:1;`: the kernel's long
        for l in hp.lines() {
            if l.contains("commit;") {
                if let Some(sz) = l.split("size:").nth(1).and_then(|x| x.split(';').next()) {
                    self.kernel_long = sz.trim().parse().unwrap_or(8);
                }
            }
        }
        if !matches!(self.kernel_long, 4 | 8) {
            return err(
                c.at(),
                format!(
                    "a kernel long of 4 or 8 bytes in header_page (found {})",
                    self.kernel_long
                ),
            );
        }
        if c.take(13, "`header_event`")? != b"header_event\0" {
            return err(c.at() - 13, "`header_event`");
        }
        c.sized_text(true, "the header_event format")?;
        Ok(())
    }

    fn add_format(&mut self, t: &str) {
        if let Some((id, f)) = parse_format(t, &mut self.common) {
            self.formats.insert(id, f);
        }
    }

    fn cmdlines(&mut self, t: &str) {
        for l in t.lines() {
            if let Some((p, comm)) = l.trim_start().split_once(' ') {
                if let Ok(pid) = p.parse::<i32>() {
                    self.cmdlines.insert(pid, comm.to_string());
                }
            }
        }
    }

    fn option(&mut self, id: u16, data: &[u8], at: u64) -> Result<(), DatError> {
        let mut c = Cur::new(data, at, self.big);
        match id {
            // BUFFER: v7 = u64 offset, name, clock, [u32 page size], u32 cpus, cpus x {u32, u64, u64}
            3 if self.version >= 7 => {
                c.u64("the buffer's section offset")?;
                let name = c.cstr("the buffer's instance name")?.to_string();
                let clock = c.cstr("the buffer's clock")?.to_string();
                let rest = data.len() - c.pos;
                // trace-cmd 3.2 added the sub-buffer size; tell the layouts apart by length.
                let n_old = if rest >= 4 { Cur { b: data, pos: c.pos, base: at, big: self.big }.u32("")? } else { 0 };
                if rest != 4 + 20 * n_old as usize {
                    let ps = c.u32("the buffer's page size")?;
                    if name.is_empty() && (32..=MAX_PAGE).contains(&ps) {
                        self.page_size = ps;
                    }
                }
                let n = c.u32("the buffer's CPU count")?;
                let mut cpus = Vec::new();
                for _ in 0..n {
                    let cpu = c.u32("a CPU id")?;
                    let offset = c.u64("a CPU data offset")?;
                    let size = c.u64("a CPU data size")?;
                    cpus.push(CpuData { cpu, offset, size });
                }
                // Only the top instance is replayed (its events are the kernel's own).
                if name.is_empty() {
                    self.cpus = cpus;
                    if !clock.is_empty() {
                        self.clock = clock;
                    }
                }
            }
            // TRACECLOCK: `[local] global ...`
            4 => {
                let t = String::from_utf8_lossy(data);
                if let Some(sel) = t.split('[').nth(1).and_then(|x| x.split(']').next()) {
                    self.clock = sel.to_string();
                }
            }
            // OFFSET: a signed number added to every timestamp
            7 => {
                let t = String::from_utf8_lossy(data);
                let t = t.trim_end_matches('\0').trim();
                self.ts_offset = t.parse().unwrap_or(0);
            }
            // TSC2NSEC: timestamps are TSC counts; replay needs ns.
            14 => return err(at, "a trace in nanoseconds (this one was recorded in TSC counts with TSC2NSEC; record with -C global)"),
            _ => {}
        }
        Ok(())
    }

    /// A v7 section at `off`: (id, body after decompression, body's file offset).
    fn section(&self, off: u64) -> Result<(u16, Vec<u8>, u64), DatError> {
        let h = self.read(off, 16, "a section header")?;
        let mut c = Cur::new(&h, off, self.big);
        let id = c.u16("a section id")?;
        let flags = c.u16("section flags")?;
        c.u32("a section description")?;
        let size = c.u64("a section size")?;
        if size > MAX_META {
            return err(off + 8, format!("a plausible section size (found {size})"));
        }
        let body_at = off + 16;
        if id == 3 {
            // flyrecord data: read through the BUFFER option's offsets instead
            return Ok((id, Vec::new(), body_at));
        }
        let body = self.read(body_at, size, "a section body")?;
        if flags & 1 == 1 {
            let mut c = Cur::new(&body, body_at, self.big);
            let csize = c.u32("a compressed size")?;
            let usize_ = c.u32("an uncompressed size")?;
            if u64::from(usize_) > MAX_META {
                return err(
                    body_at + 4,
                    format!("a plausible uncompressed size (found {usize_})"),
                );
            }
            let data = c.take(csize as usize, "the compressed section")?;
            let out = decompress(self.compression, data, usize_ as usize, body_at)?;
            return Ok((id, out, body_at));
        }
        Ok((id, body, body_at))
    }

    fn v7_sections(&mut self, first_opt: u64) -> Result<(), DatError> {
        let mut next = first_opt;
        let mut seen = 0;
        let mut meta = Vec::new();
        while next != 0 {
            seen += 1;
            if seen > 64 {
                return err(next, "a chain of at most 64 options sections");
            }
            let (id, body, at) = self.section(next)?;
            if id != 0 {
                return err(
                    next,
                    format!("an options section (id 0), found section id {id}"),
                );
            }
            next = 0;
            let mut c = Cur::new(&body, at, self.big);
            while c.pos < body.len() {
                let oid = c.u16("an option id")?;
                let size = c.u32("an option size")?;
                let data = c.take(size as usize, "an option's data")?;
                let data_at = c.at() - u64::from(size);
                if oid == 0 {
                    if data.len() >= 8 {
                        next = Cur::new(data, data_at, self.big).u64("the next options offset")?;
                    }
                    break;
                }
                if oid == 19 && data.len() >= 8 {
                    let o = Cur::new(data, data_at, self.big).u64("a section offset")?;
                    self.kallsyms_src = Some(KallsymsSrc::Section(o));
                } else if (16..=21).contains(&oid) && data.len() >= 8 {
                    let o = Cur::new(data, data_at, self.big).u64("a section offset")?;
                    meta.push((oid, o));
                } else {
                    self.option(oid, data, data_at)?;
                }
            }
        }
        for (oid, off) in meta {
            let (_, body, at) = self.section(off)?;
            let mut c = Cur::new(&body, at, self.big);
            match oid {
                16 => self.header_info(&mut c)?,
                17 => {
                    let n = c.u32("the number of ftrace event formats")?;
                    for _ in 0..n {
                        let t = c.sized_text(true, "an ftrace event format")?;
                        self.add_format(t);
                    }
                }
                18 => {
                    let systems = c.u32("the number of event systems")?;
                    for _ in 0..systems {
                        c.cstr("an event system name")?;
                        let n = c.u32("the number of formats in a system")?;
                        for _ in 0..n {
                            let t = c.sized_text(true, "an event format")?;
                            self.add_format(t);
                        }
                    }
                }
                19 => {}
                21 => {
                    let t = c.sized_text(true, "saved cmdlines")?.to_string();
                    self.cmdlines(&t);
                }
                _ => {}
            }
        }
        if self.cpus.is_empty() {
            return err(
                first_opt,
                "a BUFFER option naming the top instance's per-CPU data",
            );
        }
        Ok(())
    }

    /// The function symbol at or below `addr` (trace-cmd prints the nearest one).
    fn symbol(&self, addr: u64) -> Option<&str> {
        let syms = self.kallsyms.get_or_init(|| {
            let text = match &self.kallsyms_src {
                Some(KallsymsSrc::Text(t)) => t.clone(),
                Some(KallsymsSrc::Section(o)) => self
                    .section(*o)
                    .ok()
                    .and_then(|(_, body, at)| {
                        let mut c = Cur::new(&body, at, self.big);
                        c.sized_text(false, "kallsyms").ok().map(str::to_string)
                    })
                    .unwrap_or_default(),
                None => String::new(),
            };
            Syms::parse(text)
        });
        syms.find(addr)
    }
}

/// Where kallsyms is.
enum KallsymsSrc {
    Text(String),
    Section(u64),
}

/// Function symbols of `/proc/kallsyms` text: one string, an index sorted by address.
struct Syms {
    text: String,
    idx: Vec<(u64, u32, u32)>,
}

impl Syms {
    fn parse(text: String) -> Syms {
        let mut idx = Vec::new();
        let mut pos = 0usize;
        for l in text.split('\n') {
            let start = pos;
            pos += l.len() + 1;
            let b = l.as_bytes();
            // `ffffffff81000000 T _text [module]`
            if b.len() < 20
                || b[16] != b' '
                || b[18] != b' '
                || !matches!(b[17], b't' | b'T' | b'w' | b'W')
            {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(&l[..16], 16) else {
                continue;
            };
            let name = &l[19..];
            let name = name.split([' ', '\t']).next().unwrap_or(name);
            idx.push((addr, (start + 19) as u32, name.len() as u32));
        }
        idx.sort_unstable();
        Syms { text, idx }
    }

    fn find(&self, addr: u64) -> Option<&str> {
        let i = self.idx.partition_point(|(a, _, _)| *a <= addr);
        let &(_, at, len) = self.idx.get(i.checked_sub(1)?)?;
        self.text.get(at as usize..(at + len) as usize)
    }
}

/// One CPU's ring-buffer pages, read one page (or one compressed chunk) at a time.
struct CpuStream {
    cpu: u32,
    data: CpuData,
    /// Next file offset to read from (page or chunk).
    next: u64,
    /// Chunks left (compressed files).
    chunks_left: Option<u32>,
    /// Current decompressed buffer (one page when uncompressed) and the page in it.
    buf: Vec<u8>,
    buf_at: u64,
    page: usize,
    /// Inside the current page: next event offset, end of data, page base timestamp.
    pos: usize,
    end: usize,
    ts: u64,
    /// Lost events announced by the current page (`RB_MISSED_EVENTS`), reported once.
    lost: Option<Option<u64>>,
    done: bool,
}

/// A decoded record: its CPU, timestamp (ns), and payload (starting at `common_type`).
struct Rec<'a> {
    cpu: u32,
    ts: u64,
    data: &'a [u8],
}

impl CpuStream {
    fn new(d: &Dat, data: CpuData) -> Result<CpuStream, DatError> {
        let mut s = CpuStream {
            cpu: data.cpu,
            data,
            next: data.offset,
            chunks_left: None,
            buf: Vec::new(),
            buf_at: data.offset,
            page: 0,
            pos: 0,
            end: 0,
            ts: 0,
            lost: None,
            done: data.size == 0,
        };
        if !s.done && d.compression != Compression::None {
            let b = d.read(data.offset, 4, "the CPU's chunk count")?;
            let n = Cur::new(&b, data.offset, d.big).u32("the CPU's chunk count")?;
            s.chunks_left = Some(n);
            s.next = data.offset + 4;
        }
        Ok(s)
    }

    /// Loads the next page; false at the end of this CPU's data.
    fn next_page(&mut self, d: &Dat) -> Result<bool, DatError> {
        let ps = d.page_size as usize;
        loop {
            if self.done {
                return Ok(false);
            }
            // Another page in the current buffer?
            if self.page * ps + ps <= self.buf.len() && !self.buf.is_empty() {
                let base = self.page * ps;
                self.page += 1;
                if self.load_page(d, base)? {
                    return Ok(true);
                }
                continue;
            }
            // Refill
            self.buf.clear();
            self.page = 0;
            match self.chunks_left {
                None => {
                    let end = self.data.offset + self.data.size;
                    if self.next >= end {
                        self.done = true;
                        continue;
                    }
                    let n = (end - self.next).min(ps as u64);
                    self.buf = d.read(self.next, n, "a ring-buffer page")?;
                    self.buf_at = self.next;
                    self.next += n;
                    if n < ps as u64 {
                        return err(
                            self.buf_at,
                            format!(
                                "a whole page of {ps} bytes (CPU {} data ends after {n})",
                                self.cpu
                            ),
                        );
                    }
                }
                Some(0) => {
                    self.done = true;
                    continue;
                }
                Some(k) => {
                    self.chunks_left = Some(k - 1);
                    let h = d.read(self.next, 8, "a chunk header")?;
                    let mut c = Cur::new(&h, self.next, d.big);
                    let csize = c.u32("a chunk's compressed size")?;
                    let usize_ = c.u32("a chunk's size")?;
                    if csize > MAX_CHUNK
                        || usize_ > MAX_CHUNK
                        || !(usize_ as usize).is_multiple_of(ps)
                    {
                        return err(self.next, format!("a chunk of whole pages up to {MAX_CHUNK} bytes (sizes {csize}/{usize_})"));
                    }
                    let cdata = d.read(self.next + 8, u64::from(csize), "a compressed chunk")?;
                    self.buf = decompress(d.compression, &cdata, usize_ as usize, self.next)?;
                    self.buf_at = self.next;
                    self.next += 8 + u64::from(csize);
                }
            }
        }
    }

    /// Sets up the page at `base` in `buf`; false if it holds no events.
    fn load_page(&mut self, d: &Dat, base: usize) -> Result<bool, DatError> {
        let ps = d.page_size as usize;
        let at = self.buf_at + base as u64;
        let page = &self.buf[base..base + ps];
        let mut c = Cur::new(page, at, d.big);
        self.ts = c.u64("a page timestamp")?;
        let commit = if d.kernel_long == 8 {
            c.u64("a page commit")?
        } else {
            u64::from(c.u32("a page commit")?)
        };
        let size = (commit & ((1 << 27) - 1)) as usize;
        let hdr = 8 + d.kernel_long;
        if size > ps - hdr {
            return err(
                at + 8,
                format!("a page commit of at most {} bytes (found {size})", ps - hdr),
            );
        }
        // RB_MISSED_EVENTS (bit 31), RB_MISSED_STORED (bit 30: the count follows the data)
        if commit & (1 << 31) != 0 {
            let count = if commit & (1 << 30) != 0 && hdr + size + d.kernel_long <= ps {
                let mut c = Cur {
                    b: page,
                    pos: hdr + size,
                    base: at,
                    big: d.big,
                };
                Some(if d.kernel_long == 8 {
                    c.u64("a lost count")?
                } else {
                    u64::from(c.u32("a lost count")?)
                })
            } else {
                None
            };
            self.lost = Some(count);
        }
        self.pos = base + hdr;
        self.end = base + hdr + size;
        Ok(size > 0)
    }

    /// The next record on this CPU, or `None` at its end.
    fn next_rec(&mut self, d: &Dat) -> Result<Option<(u64, usize, usize)>, DatError> {
        loop {
            if self.pos >= self.end {
                if !self.next_page(d)? {
                    return Ok(None);
                }
                continue;
            }
            let at = self.buf_at + self.pos as u64;
            let b = &self.buf[..self.end];
            let mut c = Cur {
                b,
                pos: self.pos,
                base: self.buf_at,
                big: d.big,
            };
            let w = c.u32("an event header")?;
            let (type_len, delta) = if d.big {
                (w >> 27, u64::from(w & 0x07ff_ffff))
            } else {
                (w & 0x1f, u64::from(w >> 5))
            };
            match type_len {
                29 => {
                    // padding: delta 0 = the rest of the page is empty
                    if delta == 0 {
                        self.pos = self.end;
                        continue;
                    }
                    let len = c.u32("a padding length")? as usize;
                    self.ts += delta;
                    self.pos = self.pos + 4 + len;
                }
                30 => {
                    let hi = u64::from(c.u32("a time extend")?);
                    self.ts += (hi << 27) + delta;
                    self.pos += 8;
                }
                31 => {
                    let hi = u64::from(c.u32("a time stamp")?);
                    self.ts = ((hi << 27) | delta) | (self.ts & (0xf8 << 56));
                    self.pos += 8;
                }
                0 => {
                    let len = c.u32("an event length")? as usize;
                    if len < 4 {
                        return err(
                            at + 4,
                            format!("an event length of at least 4 (found {len})"),
                        );
                    }
                    let start = self.pos + 8;
                    let size = len - 4;
                    if start + size > self.end {
                        return err(at, "an event inside its page's committed data");
                    }
                    self.ts += delta;
                    self.pos = self.pos + 4 + ((len + 3) & !3);
                    return Ok(Some((self.ts, start, size)));
                }
                n => {
                    let start = self.pos + 4;
                    let size = n as usize * 4;
                    if start + size > self.end {
                        return err(at, "an event inside its page's committed data");
                    }
                    self.ts += delta;
                    self.pos = start + size;
                    return Ok(Some((self.ts, start, size)));
                }
            }
        }
    }
}

/// What [`for_each_line`] hands out.
pub enum Item<'a> {
    /// An event, rendered as `trace-cmd report -l -t` prints it.
    Event(Line<'a>),
    /// Events were lost on `cpu` (every CPU when `None`) before the next one (`count` when
    /// the page says).
    Lost {
        /// The CPU.
        cpu: Option<u32>,
        /// How many, when known.
        count: Option<u64>,
    },
}

/// Reads `path` and calls `f` with every record in time order (CPUs merged, ties to the lower
/// CPU), rendered as a [`Line`]; `f`'s error stops the walk and is returned with the record's
/// byte offset. Memory: the metadata plus one page or chunk per CPU.
pub fn for_each_line(
    path: &std::path::Path,
    f: impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<Dat, DatError> {
    walk(Dat::open(path)?, f)
}

/// [`for_each_line`] on a `trace.dat` held in memory.
pub fn for_each_line_in(
    bytes: Vec<u8>,
    f: impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<Dat, DatError> {
    walk(Dat::from_bytes(bytes)?, f)
}

fn walk(d: Dat, mut f: impl FnMut(u64, Item<'_>) -> Result<(), String>) -> Result<Dat, DatError> {
    let mut streams = Vec::new();
    for cd in &d.cpus {
        streams.push(CpuStream::new(&d, *cd)?);
    }
    // Head record per CPU: (ts, start, size)
    let mut heads: Vec<Option<(u64, usize, usize)>> = Vec::with_capacity(streams.len());
    for s in &mut streams {
        heads.push(s.next_rec(&d)?);
    }
    let mut fields = String::new();
    let mut comm_buf = String::new();
    let mut n = 0u64;
    loop {
        let mut best: Option<usize> = None;
        for (i, h) in heads.iter().enumerate() {
            if let Some((ts, _, _)) = h {
                match best {
                    Some(b) if heads[b].expect("head").0 <= *ts => {}
                    _ => best = Some(i),
                }
            }
        }
        let Some(i) = best else { break };
        let (ts, start, size) = heads[i].expect("head");
        let s = &mut streams[i];
        let at = s.buf_at + start as u64;
        if let Some(count) = s.lost.take() {
            n += 1;
            f(
                n,
                Item::Lost {
                    cpu: Some(s.cpu),
                    count,
                },
            )
            .map_err(|m| DatError { offset: at, msg: m })?;
        }
        let rec = Rec {
            cpu: s.cpu,
            ts,
            data: &s.buf[start..start + size],
        };
        n += 1;
        render(&d, &rec, &mut fields, &mut comm_buf, |line| {
            f(n, Item::Event(line))
        })
        .map_err(|m| DatError { offset: at, msg: m })?;
        let s = &mut streams[i];
        heads[i] = s.next_rec(&d)?;
    }
    Ok(d)
}

fn get(data: &[u8], off: usize, size: usize, big: bool) -> Option<u64> {
    let b = data.get(off..off + size)?;
    let mut v = 0u64;
    if big {
        for &x in b {
            v = v << 8 | u64::from(x);
        }
    } else {
        for &x in b.iter().rev() {
            v = v << 8 | u64::from(x);
        }
    }
    Some(v)
}

fn sext(v: u64, size: usize) -> i64 {
    if size == 0 {
        return 0;
    }
    if size >= 8 {
        return v as i64;
    }
    let shift = 64 - 8 * size as u32;
    ((v << shift) as i64) >> shift
}

fn chars(b: &[u8]) -> &str {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..n]).unwrap_or("?")
}

/// Renders one record as a [`Line`] and hands it to `f`.
fn render(
    d: &Dat,
    r: &Rec<'_>,
    out: &mut String,
    comm: &mut String,
    f: impl FnOnce(Line<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let big = d.big;
    let ty = get(r.data, 0, 2, big).ok_or("an event of at least 2 bytes")? as u16;
    let Some(fmt) = d.formats.get(&ty) else {
        return Err(format!(
            "an event id with a format in the file (id {ty} has none)"
        ));
    };
    let num = |o: Option<(usize, usize)>| o.and_then(|(off, sz)| get(r.data, off, sz, big));
    let pid = num(d.common.pid).map_or(0, |v| sext(v, d.common.pid.map_or(4, |x| x.1)) as i32);
    let fl = num(d.common.flags).unwrap_or(0) as u8;
    let pc = num(d.common.preempt).unwrap_or(0) as u8;
    // libtraceevent's latency format: irqs-off, need-resched, hard/softirq, preempt depth,
    // migrate-disable.
    let flags = Flags([
        if fl & 0x01 != 0 {
            b'd'
        } else if fl & 0x02 != 0 {
            b'X'
        } else {
            b'.'
        },
        if fl & 0x04 != 0 { b'N' } else { b'.' },
        match (fl & 0x08 != 0, fl & 0x10 != 0, fl & 0x40 != 0) {
            (_, _, true) => b'z',
            (true, true, _) => b'H',
            (true, false, _) => b'h',
            (false, true, _) => b's',
            _ => b'.',
        },
        match pc & 0x0f {
            0 => b'.',
            x @ 1..=9 => b'0' + x,
            x => b'a' + x - 10,
        },
        match pc >> 4 {
            0 => b'.',
            x @ 1..=9 => b'0' + x,
            x => b'a' + x - 10,
        },
    ]);
    comm.clear();
    if pid == 0 {
        comm.push_str("<idle>");
    } else if let Some(c) = d.cmdlines.get(&pid) {
        comm.push_str(c);
    } else {
        comm.push_str("<...>");
    }
    out.clear();
    let field = |name: &str| fmt.fields.iter().find(|x| x.name == name);
    let val = |name: &str| -> Option<i64> {
        let x = field(name)?;
        let v = get(r.data, x.offset, x.size, big)?;
        Some(if x.signed { sext(v, x.size) } else { v as i64 })
    };
    let _ = write_event(d, fmt, r, out, &val);
    let ts = (r.ts as i64 + d.ts_offset).max(0) as u64;
    let line = Line {
        comm: comm.as_str(),
        pid,
        tgid: None,
        cpu: r.cpu,
        flags: Some(flags),
        ts_ns: ts,
        event: &fmt.name,
        fields: out.trim_end(),
    };
    f(line)
}

/// A string field (`char[N]` or `__data_loc char[]`) of a record, without copying.
fn field_str<'a>(fmt: &Format, data: &'a [u8], name: &str, big: bool) -> &'a str {
    match fmt.fields.iter().find(|x| x.name == name) {
        Some(x) if x.kind == Kind::Chars => data.get(x.offset..x.offset + x.size).map_or("", chars),
        Some(x) => dyn_str(data, x, big).unwrap_or(""),
        None => "",
    }
}

fn dyn_str<'a>(data: &'a [u8], x: &Field, big: bool) -> Option<&'a str> {
    let v = get(data, x.offset, 4, big)? as usize;
    let (off, len) = (v & 0xffff, v >> 16);
    let off = if x.kind == Kind::RelLocStr {
        x.offset + 4 + off
    } else {
        off
    };
    Some(chars(data.get(off..off + len)?))
}

/// The `TP_printk` text of the events replay and the noise report read, as the kernel prints
/// them; every other event as `name=value` pairs.
fn write_event(
    d: &Dat,
    fmt: &Format,
    r: &Rec<'_>,
    out: &mut String,
    val: &dyn Fn(&str) -> Option<i64>,
) -> std::fmt::Result {
    use crate::event::{Comm, SchedSwitch, SchedWakeup, TickStop};
    use std::fmt::Write as _;
    let v = |n: &str| val(n).unwrap_or(0);
    let text = |n: &str| field_str(fmt, r.data, n, d.big);
    match fmt.name.as_str() {
        "user_enter" | "user_exit" => Ok(()),
        "sys_enter" => {
            write!(out, "NR {} (", v("id"))?;
            let a = fmt.fields.iter().find(|x| x.name == "args");
            let word = d.kernel_long;
            for i in 0..6 {
                let x = a
                    .and_then(|a| get(r.data, a.offset + i * word, word, d.big))
                    .unwrap_or(0);
                write!(out, "{}{x:x}", if i > 0 { ", " } else { "" })?;
            }
            out.push(')');
            Ok(())
        }
        "sys_exit" => write!(out, "NR {} = {}", v("id"), v("ret")),
        "sched_switch" => {
            let mut state = String::new();
            write_state(fmt, v("prev_state") as u64, &mut state)?;
            let e = SchedSwitch {
                prev_comm: Comm::Task(text("prev_comm")),
                prev_pid: v("prev_pid") as i32,
                prev_prio: v("prev_prio") as i32,
                prev_state: &state,
                next_comm: Comm::Task(text("next_comm")),
                next_pid: v("next_pid") as i32,
                next_prio: v("next_prio") as i32,
            };
            write!(out, "{e}")
        }
        "sched_wakeup" | "sched_wakeup_new" | "sched_waking" => {
            let e = SchedWakeup {
                comm: Comm::Task(text("comm")),
                pid: v("pid") as i32,
                prio: v("prio") as i32,
                target_cpu: v("target_cpu") as i32,
            };
            write!(out, "{e}")
        }
        "sched_process_fork" => write!(
            out,
            "comm={} pid={} child_comm={} child_pid={}",
            text("parent_comm"),
            v("parent_pid"),
            text("child_comm"),
            v("child_pid")
        ),
        "tick_stop" => {
            let mut dep = String::new();
            write_sym(fmt, "dependency", v("dependency") as u64, &mut dep)?;
            let e = TickStop {
                success: v("success") != 0,
                dependency: &dep,
            };
            write!(out, "{e}")
        }
        "irq_handler_entry" => write!(out, "irq={} name={}", v("irq"), text("name")),
        "irq_handler_exit" => write!(
            out,
            "irq={} ret={}",
            v("irq"),
            if v("ret") != 0 {
                "handled"
            } else {
                "unhandled"
            }
        ),
        "softirq_entry" | "softirq_exit" | "softirq_raise" => {
            write!(out, "vec={} [action=", v("vec"))?;
            write_sym(fmt, "vec", v("vec") as u64, out)?;
            out.push(']');
            Ok(())
        }
        _ => {
            for (i, x) in fmt.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write!(out, "{}=", x.name)?;
                match x.kind {
                    Kind::Chars => {
                        out.push_str(r.data.get(x.offset..x.offset + x.size).map_or("", chars))
                    }
                    Kind::DataLocStr | Kind::RelLocStr => {
                        out.push_str(dyn_str(r.data, x, d.big).unwrap_or(""))
                    }
                    Kind::Sym => {
                        let a = get(r.data, x.offset, x.size, d.big).unwrap_or(0);
                        match d.symbol(a) {
                            Some(s) => out.push_str(s),
                            None => write!(out, "0x{a:x}")?,
                        }
                    }
                    Kind::Other => write!(out, "ARRAY[{}]", x.size)?,
                    Kind::Int => {
                        let raw = get(r.data, x.offset, x.size, d.big).unwrap_or(0);
                        if fmt.symbols.contains_key(&x.name) {
                            write_sym(fmt, &x.name, raw, out)?;
                        } else if x.signed {
                            write!(out, "{}", sext(raw, x.size))?;
                        } else {
                            write!(out, "{raw}")?;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// `__print_symbolic` / `__print_flags` of `field`, or the number.
fn write_sym(fmt: &Format, field: &str, v: u64, out: &mut String) -> std::fmt::Result {
    use std::fmt::Write as _;
    match fmt.symbols.get(field) {
        Some((false, t)) => match t.iter().find(|(k, _)| *k == v) {
            Some((_, s)) => out.push_str(s),
            None => write!(out, "0x{v:x}")?,
        },
        Some((true, t)) => {
            let mut first = true;
            let mut left = v;
            for (k, s) in t {
                if *k != 0 && left & k == *k {
                    if !first {
                        out.push('|');
                    }
                    out.push_str(s);
                    first = false;
                    left &= !k;
                }
            }
            if first {
                write!(out, "0x{v:x}")?;
            }
        }
        None => write!(out, "{v}")?,
    }
    Ok(())
}

/// `prev_state` as the 6.x `sched_switch` print fmt shows it: `R` (0), `R+` (preempted), or
/// the state letters joined with `|`, from the file's own table.
fn write_state(fmt: &Format, v: u64, out: &mut String) -> std::fmt::Result {
    use std::fmt::Write as _;
    let table = fmt
        .symbols
        .get("prev_state")
        .map(|(_, t)| t.as_slice())
        .unwrap_or(&[]);
    // TASK_REPORT_MAX is the bit above the last table entry
    let max = table
        .iter()
        .map(|(k, _)| *k)
        .max()
        .and_then(|k| k.checked_shl(1))
        .filter(|m| *m != 0)
        .unwrap_or(0x100);
    let s = v & max.wrapping_sub(1);
    if s == 0 {
        out.push('R');
    } else {
        let mut first = true;
        for (k, name) in table {
            if *k != 0 && s & k != 0 {
                if !first {
                    out.push('|');
                }
                out.push_str(name);
                first = false;
            }
        }
        if first {
            write!(out, "0x{s:x}")?;
        }
    }
    if v & max != 0 {
        out.push('+');
    }
    Ok(())
}
