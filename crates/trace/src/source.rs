//! Where a trace's events come from: ftrace or `trace-cmd report` text (plain, gzip, stdin), or
//! trace-cmd's binary `trace.dat` (plain or gzip). One visitor for replay and the noise report,
//! so both read every format the same way and name the same line (or byte offset) in errors.

pub use crate::dat::Item;
use crate::line::{parse_line, Parsed};
use crate::replay::ReplayError;
use std::io::{BufRead, Read};
use std::path::Path;

/// Calls `f` with every event (and lost-events mark) of the file at `path`, in order; `-` is
/// text on stdin. Returns the number of lines (text) or records (trace.dat) read.
pub fn visit_path(
    path: &Path,
    f: impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<u64, ReplayError> {
    let name = path.display().to_string();
    if path.as_os_str() == "-" {
        return visit_reader("-", std::io::stdin().lock(), f);
    }
    let io = |e: std::io::Error| ReplayError {
        file: name.clone(),
        line: 0,
        msg: format!("cannot read: {e}"),
    };
    match sniff(path).map_err(io)? {
        Kind::Dat => visit_dat(&name, path, f),
        Kind::GzDat => {
            // The reader needs random access (one cursor per CPU): unpack to a temporary file.
            let tmp = TempFile::new().map_err(io)?;
            {
                let mut gz =
                    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).map_err(io)?);
                let mut out = std::fs::File::create(&tmp.0).map_err(io)?;
                std::io::copy(&mut gz, &mut out).map_err(|e| ReplayError {
                    file: name.clone(),
                    line: 0,
                    msg: format!("cannot decompress (truncated or corrupt gzip?): {e}"),
                })?;
            }
            visit_dat(&name, &tmp.0, f)
        }
        Kind::Text => visit_reader(&name, std::fs::File::open(path).map_err(io)?, f),
    }
}

/// Is the file at `path` a `trace.dat` (plain or gzip-compressed)?
pub fn is_dat_path(path: &Path) -> bool {
    matches!(sniff(path), Ok(Kind::Dat | Kind::GzDat))
}

enum Kind {
    Text,
    Dat,
    GzDat,
}

fn sniff(path: &Path) -> std::io::Result<Kind> {
    let mut head = [0u8; 10];
    let n = read_head(&mut std::fs::File::open(path)?, &mut head)?;
    if crate::dat::is_dat(&head[..n]) {
        return Ok(Kind::Dat);
    }
    if head[..n].starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(path)?);
        let m = read_head(&mut gz, &mut head).unwrap_or(0);
        if crate::dat::is_dat(&head[..m]) {
            return Ok(Kind::GzDat);
        }
    }
    Ok(Kind::Text)
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A temporary file removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new() -> std::io::Result<TempFile> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ctxtrack-{}-{k}.dat", std::process::id()));
        std::fs::File::create(&p)?;
        Ok(TempFile(p))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A `trace.dat`: errors name the byte offset (`line` 0, the message says `byte N`).
fn visit_dat(
    name: &str,
    path: &Path,
    f: impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<u64, ReplayError> {
    let mut records = 0;
    let mut f = f;
    crate::dat::for_each_line(path, |n, item| {
        records = n;
        f(n, item)
    })
    .map_err(|e| ReplayError {
        file: name.into(),
        line: 0,
        msg: e.to_string(),
    })?;
    Ok(records)
}

/// Calls `f` with every event of `input` (plain or gzip text), line by line; `name` is used in
/// errors. Returns the number of lines. Malformed lines are errors naming the line and what
/// was expected; a cut-off last line or truncated gzip is an error too.
pub fn visit_reader(
    name: &str,
    input: impl Read,
    mut f: impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<u64, ReplayError> {
    let mut r = std::io::BufReader::with_capacity(1 << 16, input);
    let gz = {
        let buf = r.fill_buf().map_err(|e| ReplayError {
            file: name.into(),
            line: 0,
            msg: format!("cannot read: {e}"),
        })?;
        buf.starts_with(&[0x1f, 0x8b])
    };
    if gz {
        let d = flate2::bufread::MultiGzDecoder::new(r);
        visit_lines(name, std::io::BufReader::with_capacity(1 << 16, d), &mut f)
    } else {
        visit_lines(name, r, &mut f)
    }
}

fn visit_lines(
    name: &str,
    mut r: impl BufRead,
    f: &mut impl FnMut(u64, Item<'_>) -> Result<(), String>,
) -> Result<u64, ReplayError> {
    let mut buf = Vec::with_capacity(256);
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = r.read_until(b'\n', &mut buf).map_err(|e| ReplayError {
            file: name.into(),
            line: n + 1,
            msg: format!("cannot read (truncated or corrupt compressed data?): {e}"),
        })?;
        if got == 0 {
            break;
        }
        n += 1;
        let complete = buf.last() == Some(&b'\n');
        let text = std::str::from_utf8(&buf).map_err(|e| ReplayError {
            file: name.into(),
            line: n,
            msg: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        })?;
        let fail = |msg: String| ReplayError {
            file: name.into(),
            line: n,
            msg: if complete {
                format!("expected {msg}")
            } else {
                format!("the last line is cut short (truncated trace?): expected {msg}")
            },
        };
        let r = match parse_line(text).map_err(fail)? {
            Parsed::Header => Ok(()),
            Parsed::Lost { cpu, count } => f(n, Item::Lost { cpu, count }),
            Parsed::Event(l) => f(n, Item::Event(l)),
        };
        r.map_err(|msg| ReplayError {
            file: name.into(),
            line: n,
            msg,
        })?;
    }
    Ok(n)
}
