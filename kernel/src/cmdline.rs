//! The boot parameters: PVH `hvm_start_info` (command line, ACPI RSDP) and the options this
//! kernel reads from the command line, with Linux's names (`nohz_full=`, and `ct=` to switch
//! context tracking off for ct-off/ct-on comparisons on the same kernel).

/// `XEN_HVM_START_MAGIC_VALUE`.
const HVM_START_MAGIC: u32 = 0x336e_c578;

/// What QEMU passed in `struct hvm_start_info`.
pub struct StartInfo {
    /// The `-append` string.
    pub cmdline: &'static str,
    /// Physical address of the ACPI RSDP (0: search the BIOS area).
    pub rsdp: u64,
}

/// Reads `struct hvm_start_info` at `addr` (identity-mapped).
pub fn start_info(addr: u64) -> StartInfo {
    // SAFETY: QEMU's PVH loader put the structure (and the string) in RAM we identity-map.
    unsafe {
        let p = addr as *const u8;
        let magic = (p as *const u32).read_volatile();
        if magic != HVM_START_MAGIC {
            panic!("hvm_start_info at {addr:#x}: magic {magic:#x}, expected {HVM_START_MAGIC:#x} (boot with qemu -kernel, PVH)");
        }
        let cmdline_paddr = (p.add(24) as *const u64).read_volatile();
        let rsdp = (p.add(32) as *const u64).read_volatile();
        let cmdline = if cmdline_paddr == 0 {
            ""
        } else {
            let s = cmdline_paddr as *const u8;
            let mut n = 0;
            while *s.add(n) != 0 && n < 4096 {
                n += 1;
            }
            core::str::from_utf8(core::slice::from_raw_parts(s, n))
                .unwrap_or_else(|_| panic!("command line at {cmdline_paddr:#x} is not UTF-8"))
        };
        StartInfo { cmdline, rsdp }
    }
}

/// The options this kernel understands.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `nohz_full=<cpu list>`: bit n set for CPU n.
    pub nohz_full: u64,
    /// `ct=on|off`: context tracking on the nohz_full CPUs (default on).
    pub ct: bool,
    /// `workload=<name>` for the general kernel image (tests ignore it).
    pub workload: &'static str,
    /// `loops=<n>`: the workload's size (messaging loops, thousands of syscalls, ...; 0: its
    /// default).
    pub loops: u64,
    /// `ct_work=on|off`: deferred IPIs (the CT_WORK series): a work field in every CPU's state
    /// word, and [`crate::text_poke`] defers to nohz_full CPUs in user mode (default off).
    pub ct_work: bool,
}

/// Parses the command line; an unknown value panics with the option and what was expected.
pub fn parse(cmdline: &'static str) -> Options {
    let mut o = Options {
        nohz_full: 0,
        ct: true,
        workload: "messaging",
        loops: 0,
        ct_work: false,
    };
    for word in cmdline.split_ascii_whitespace() {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        match k {
            "nohz_full" => {
                o.nohz_full = cpulist(v).unwrap_or_else(|| {
                    panic!(
                        "command line: nohz_full={v}: expected a CPU list like 1-3,5 (CPUs < 64)"
                    )
                })
            }
            "ct" => {
                o.ct = match v {
                    "on" => true,
                    "off" => false,
                    _ => panic!("command line: ct={v}: expected on or off"),
                }
            }
            "ct_work" => {
                o.ct_work = match v {
                    "on" => true,
                    "off" => false,
                    _ => panic!("command line: ct_work={v}: expected on or off"),
                }
            }
            "workload" => o.workload = v,
            "loops" => {
                o.loops = v
                    .parse()
                    .unwrap_or_else(|_| panic!("command line: loops={v}: expected a number"))
            }
            _ => {} // like Linux: unknown words are for someone else
        }
    }
    o
}

/// `cpulist_parse()`: "1-3,5" → bits 1, 2, 3, 5.
pub fn cpulist(s: &str) -> Option<u64> {
    let mut m = 0u64;
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= 64 {
            return None;
        }
        for c in a..=b {
            m |= 1 << c;
        }
    }
    Some(m)
}
