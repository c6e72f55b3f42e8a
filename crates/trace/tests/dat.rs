//! The trace.dat reader on files built here byte by byte (versions 6 and 7, uncompressed, zlib
//! and zstd; time extends, padding, lost events, several CPUs), and on broken files: every
//! truncation and corruption is an error naming a byte offset, never a panic.

use ctxtrack_trace::dat::{for_each_line, for_each_line_in, Item};
use std::io::Write;

const PAGE: usize = 4096;

fn fmt(name: &str, id: u16, fields: &str, print: &str) -> String {
    format!(
        "name: {name}\nID: {id}\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
         \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
         \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
         \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n{fields}\nprint fmt: {print}\n"
    )
}

fn formats() -> Vec<(&'static str, String)> {
    vec![
        (
            "context_tracking",
            fmt("user_enter", 100, "\tfield:int dummy;\toffset:8;\tsize:4;\tsigned:1;", "\"%s\", \"\""),
        ),
        (
            "context_tracking",
            fmt("user_exit", 101, "\tfield:int dummy;\toffset:8;\tsize:4;\tsigned:1;", "\"%s\", \"\""),
        ),
        (
            "timer",
            fmt(
                "tick_stop",
                102,
                "\tfield:int success;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dependency;\toffset:12;\tsize:4;\tsigned:1;",
                "\"success=%d dependency=%s\", REC->success, __print_symbolic(REC->dependency, { 0, \"NONE\" }, { (1 << 0), \"POSIX_TIMER\" }, { (1 << 2), \"SCHED\" })",
            ),
        ),
    ]
}

/// One record: (event id, pid, extra payload).
fn rec(id: u16, pid: i32, flags: u8, extra: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_le_bytes());
    v.push(flags);
    v.push(0);
    v.extend_from_slice(&pid.to_le_bytes());
    v.extend_from_slice(extra);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// A page holding `events` as (delta, record); `time_extend` before the second one; a
/// padding event at the end; `lost` sets RB_MISSED_EVENTS with a stored count.
fn page(
    base_ts: u64,
    events: &[(u32, Vec<u8>)],
    extend: Option<u64>,
    lost: Option<u64>,
) -> Vec<u8> {
    let mut data = Vec::new();
    for (i, (delta, r)) in events.iter().enumerate() {
        if i == 1 {
            if let Some(x) = extend {
                // TIME_EXTEND: type 30, low 27 bits in delta, the rest in array[0]
                let w = 30u32 | (((x & ((1 << 27) - 1)) as u32) << 5);
                data.extend_from_slice(&w.to_le_bytes());
                data.extend_from_slice(&((x >> 27) as u32).to_le_bytes());
            }
        }
        let len = r.len() / 4;
        assert!(len <= 28);
        let w = len as u32 | (delta << 5);
        data.extend_from_slice(&w.to_le_bytes());
        data.extend_from_slice(r);
    }
    // a padding word ends the page (outside the committed bytes)
    data.extend_from_slice(&29u32.to_le_bytes()); // PADDING, delta 0
    let mut p = Vec::new();
    p.extend_from_slice(&base_ts.to_le_bytes());
    let mut commit = data.len() as u64 - 4; // the final padding word is not committed
    if let Some(n) = lost {
        commit |= (1 << 31) | (1 << 30);
        let _ = n;
    }
    p.extend_from_slice(&commit.to_le_bytes());
    p.extend_from_slice(&data[..data.len() - 4]);
    if let Some(n) = lost {
        p.extend_from_slice(&n.to_le_bytes());
    }
    p.resize(PAGE, 0);
    p
}

fn cpu_pages() -> Vec<Vec<u8>> {
    let dep = |s: i32, d: i32| [s.to_le_bytes(), d.to_le_bytes()].concat();
    vec![
        // CPU 0: user_exit, (time extend of 2^30 ns), user_enter, tick_stop SCHED
        page(
            1_000_000_000,
            &[
                (100, rec(101, 42, 1, &[0; 4])),
                (50, rec(100, 42, 1, &[0; 4])),
                (7, rec(102, 42, 1, &dep(0, 4))),
            ],
            Some(1 << 30),
            None,
        ),
        // CPU 1: one event between CPU 0's; lost events before it
        page(
            1_000_000_120,
            &[(0, rec(101, 7, 1, &[0; 4]))],
            None,
            Some(5),
        ),
    ]
}

fn sized_text(out: &mut Vec<u8>, wide: bool, t: &str) {
    if wide {
        out.extend_from_slice(&(t.len() as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(t.as_bytes());
}

fn header_info() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"header_page\0");
    sized_text(
        &mut v,
        true,
        "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n",
    );
    v.extend_from_slice(b"header_event\0");
    sized_text(
        &mut v,
        true,
        "# compressed entry header\n\ttype_len    :    5 bits\n",
    );
    v
}

fn event_formats(f: &[(&str, String)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(f.len() as u32).to_le_bytes());
    for (sys, text) in f {
        v.extend_from_slice(sys.as_bytes());
        v.push(0);
        v.extend_from_slice(&1u32.to_le_bytes());
        sized_text(&mut v, true, text);
    }
    v
}

fn v6() -> Vec<u8> {
    v6_from(&formats())
}

fn v6_from(f: &[(&str, String)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"\x17\x08\x44tracing6\0");
    v.push(0);
    v.push(8);
    v.extend_from_slice(&(PAGE as u32).to_le_bytes());
    v.extend(header_info());
    v.extend_from_slice(&0u32.to_le_bytes()); // ftrace formats
    v.extend(event_formats(f));
    sized_text(&mut v, false, ""); // kallsyms
    sized_text(&mut v, false, ""); // printk
    sized_text(&mut v, true, "42 spin\n7 other\n");
    let pages = cpu_pages();
    v.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    v.extend_from_slice(b"options  \0");
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(b"flyrecord\0");
    let table_at = v.len();
    let data_at = (table_at + 16 * pages.len()).div_ceil(PAGE) * PAGE;
    for (i, p) in pages.iter().enumerate() {
        v.extend_from_slice(&((data_at + i * PAGE) as u64).to_le_bytes());
        v.extend_from_slice(&(p.len() as u64).to_le_bytes());
    }
    v.resize(data_at, 0);
    for p in &pages {
        v.extend_from_slice(p);
    }
    v
}

#[derive(Clone, Copy, PartialEq)]
enum Comp {
    None,
    Zlib,
    Zstd,
}

fn compress(c: Comp, d: &[u8]) -> Vec<u8> {
    match c {
        Comp::None => d.to_vec(),
        Comp::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::bulk::compress(d, 3).unwrap(),
    }
}

fn v7(c: Comp) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"\x17\x08\x44tracing7\0");
    v.push(0);
    v.push(8);
    v.extend_from_slice(&(PAGE as u32).to_le_bytes());
    v.extend_from_slice(match c {
        Comp::None => b"none\0\0".as_slice(),
        Comp::Zlib => b"zlib\x001.2\x00".as_slice(),
        Comp::Zstd => b"zstd\x001.5\x00".as_slice(),
    });
    let opt_ptr = v.len();
    v.extend_from_slice(&0u64.to_le_bytes());
    let section = |v: &mut Vec<u8>, id: u16, body: &[u8]| -> u64 {
        let at = v.len() as u64;
        let (flags, data) = if c == Comp::None {
            (0u16, body.to_vec())
        } else {
            let z = compress(c, body);
            let mut d = Vec::new();
            d.extend_from_slice(&(z.len() as u32).to_le_bytes());
            d.extend_from_slice(&(body.len() as u32).to_le_bytes());
            d.extend_from_slice(&z);
            (1, d)
        };
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(&(data.len() as u64).to_le_bytes());
        v.extend_from_slice(&data);
        at
    };
    let hi = section(&mut v, 16, &header_info());
    let ef = section(&mut v, 18, &event_formats(&formats()));
    let mut cl = Vec::new();
    sized_text(&mut cl, true, "42 spin\n7 other\n");
    let cm = section(&mut v, 21, &cl);
    // CPU data (chunked when compressed), page aligned
    let pages = cpu_pages();
    v.resize(v.len().div_ceil(PAGE) * PAGE, 0);
    let mut cpus = Vec::new();
    for p in &pages {
        let at = v.len() as u64;
        if c == Comp::None {
            v.extend_from_slice(p);
        } else {
            v.extend_from_slice(&1u32.to_le_bytes());
            let z = compress(c, p);
            v.extend_from_slice(&(z.len() as u32).to_le_bytes());
            v.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v.extend_from_slice(&z);
        }
        cpus.push((at, v.len() as u64 - at));
    }
    // options: HEADER_INFO, EVENT_FORMATS, CMDLINES, BUFFER, DONE
    let mut o = Vec::new();
    let opt = |o: &mut Vec<u8>, id: u16, d: &[u8]| {
        o.extend_from_slice(&id.to_le_bytes());
        o.extend_from_slice(&(d.len() as u32).to_le_bytes());
        o.extend_from_slice(d);
    };
    opt(&mut o, 16, &hi.to_le_bytes());
    opt(&mut o, 18, &ef.to_le_bytes());
    opt(&mut o, 21, &cm.to_le_bytes());
    let mut b = Vec::new();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(b"\0global\0");
    b.extend_from_slice(&(PAGE as u32).to_le_bytes());
    b.extend_from_slice(&(cpus.len() as u32).to_le_bytes());
    for (i, (at, size)) in cpus.iter().enumerate() {
        b.extend_from_slice(&(i as u32).to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
    }
    opt(&mut o, 3, &b);
    opt(&mut o, 0, &0u64.to_le_bytes());
    let oat = section(&mut v, 0, &o);
    v[opt_ptr..opt_ptr + 8].copy_from_slice(&oat.to_le_bytes());
    v
}

/// (record number, cpu, ts, event, fields, comm) of every item; lost marks as ("LOST", count).
fn read(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let r = for_each_line_in(bytes.to_vec(), |n, item| {
        out.push(render(n, item));
        Ok(())
    });
    r.map(|_| out).map_err(|e| e.to_string())
}

fn render(n: u64, item: Item<'_>) -> String {
    match item {
        Item::Event(l) => format!(
            "{n} {}-{} [{}] {} {}: {} {:?}",
            l.comm,
            l.pid,
            l.cpu,
            std::str::from_utf8(&l.flags.unwrap().0).unwrap(),
            l.ts_ns,
            l.event,
            l.fields
        ),
        Item::Lost { cpu, count } => format!("{n} LOST {cpu:?} {count:?}"),
    }
}

fn expected() -> Vec<String> {
    vec![
        "1 spin-42 [0] d.... 1000000100: user_exit \"\"".into(),
        "2 LOST Some(1) Some(5)".into(),
        "3 other-7 [1] d.... 1000000120: user_exit \"\"".into(),
        format!(
            "4 spin-42 [0] d.... {}: user_enter \"\"",
            1_000_000_150u64 + (1 << 30)
        ),
        format!(
            "5 spin-42 [0] d.... {}: tick_stop \"success=0 dependency=SCHED\"",
            1_000_000_157u64 + (1 << 30)
        ),
    ]
}

#[test]
fn version_6_uncompressed() {
    assert_eq!(read(&v6()).unwrap(), expected());
    // the same from a file
    let p = std::env::temp_dir().join(format!("ctxtrack-dat-{}.dat", std::process::id()));
    std::fs::write(&p, v6()).unwrap();
    let mut out = Vec::new();
    for_each_line(&p, |n, item| {
        out.push(render(n, item));
        Ok(())
    })
    .unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(out, expected());
}

#[test]
fn version_7_uncompressed_zlib_and_zstd() {
    for c in [Comp::None, Comp::Zlib, Comp::Zstd] {
        assert_eq!(read(&v7(c)).unwrap(), expected());
    }
}

/// Every prefix of a file is an error (or, for prefixes that end exactly after whole pages, a
/// shorter result), never a panic; errors name a byte offset within the file.
#[test]
fn truncated_files_are_errors_with_offsets() {
    for file in [v6(), v7(Comp::None), v7(Comp::Zlib), v7(Comp::Zstd)] {
        let full = read(&file).unwrap();
        for cut in (0..file.len()).step_by(3) {
            match read(&file[..cut]) {
                Ok(items) => assert!(
                    items.len() < full.len() || cut >= file.len() - PAGE,
                    "cut {cut}"
                ),
                Err(e) => {
                    let off: u64 = e
                        .strip_prefix("byte ")
                        .and_then(|x| x.split(':').next())
                        .and_then(|x| x.parse().ok())
                        .unwrap_or_else(|| panic!("no offset in `{e}`"));
                    assert!(off <= file.len() as u64, "{e}");
                }
            }
        }
    }
}

/// Flipping bytes anywhere never panics (a cheap version of the fuzz target).
#[test]
fn corrupt_bytes_never_panic() {
    for file in [v6(), v7(Comp::Zstd)] {
        let mut errors = 0;
        let mut x: u32 = 12345;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut f = file.clone();
            let i = x as usize % f.len();
            f[i] ^= (x >> 24) as u8 | 1;
            // An error names a byte offset; a flip in event payload may still read.
            if let Err(e) = read(&f) {
                errors += 1;
                // "byte N: what was expected" (N in the decompressed section for v7's
                // compressed sections).
                let (off, what) = e
                    .strip_prefix("byte ")
                    .and_then(|x| x.split_once(": "))
                    .unwrap_or_else(|| panic!("no offset in `{e}`"));
                assert!(off.parse::<u64>().is_ok() && !what.is_empty(), "{e}");
            }
        }
        assert!(errors > 0, "3,000 flipped bytes and not one error");
    }
}

#[test]
fn not_a_trace_dat() {
    let e = read(b"# tracer: nop\n").unwrap_err();
    assert!(e.contains("byte 0") && e.contains("magic"), "{e}");
    let mut f = v6();
    f[10] = b'9';
    let e = read(&f).unwrap_err();
    assert!(e.contains("version 6 or 7"), "{e}");
}

/// Format files a corrupt or hostile file could hold: a zero-size field, a shift past 64 bits,
/// deep parentheses. They render as something, never panic.
#[test]
fn hostile_formats_render() {
    let mut f = formats();
    f[2].1 = f[2]
        .1
        .replace("offset:12;\tsize:4;", "offset:12;\tsize:0;")
        .replace("(1 << 2)", "(1 << 70)")
        .replace(
            "{ 0, \"NONE\" }",
            &format!("{{ {}1{}, \"DEEP\" }}", "(".repeat(200), ")".repeat(200)),
        );
    let out = read(&v6_from(&f)).unwrap();
    assert_eq!(out.len(), expected().len());
    assert!(out[4].contains("tick_stop"), "{out:?}");
}
