//! What an agent learns from its host: the boot id, the host name, and its resources when
//! `--resources` is not given.
//!
//! Default resources follow Mesos's agent:
//!
//! | resource | Berth and Mesos |
//! | --- | --- |
//! | `cpus` | the CPUs this process may use (`available_parallelism`) |
//! | `mem` | total memory minus 1 GiB, or half of it if the host has less than 2 GiB (MB) |
//! | `disk` | the work directory's file system minus 5 GiB, or half of it if smaller than 10 GiB (MB) |
//! | `ports` | `[31000-32000]` |

use std::path::Path;

use anyhow::Context;
use berth_protocol::ids::BootId;
use berth_protocol::resources::Resources;

/// Where Linux keeps the id of the current boot.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// Where Linux reports memory.
pub const MEMINFO_FILE: &str = "/proc/meminfo";
/// The ports an agent offers by default (as Mesos).
pub const PORTS_DEFAULT: &str = "[31000-32000]";

const MEBIBYTE: u64 = 1024 * 1024;
const GIBIBYTE: u64 = 1024 * MEBIBYTE;

/// The id of the host's current boot: it changes when the machine reboots.
pub fn boot_id() -> anyhow::Result<BootId> {
    let text = std::fs::read_to_string(BOOT_ID_FILE)
        .with_context(|| format!("cannot read the boot id from {BOOT_ID_FILE}"))?;
    BootId::new(text.trim())
        .with_context(|| format!("{BOOT_ID_FILE} holds {:?}, not a boot id", text.trim()))
}

/// The host's name, as `uname` reports it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The resources of this host, detected as Mesos does (see the [module docs](self)), with
/// the disk measured on the file system of `work_dir`.
pub fn detect_resources(work_dir: &Path) -> anyhow::Result<Resources> {
    let cpus = std::thread::available_parallelism()
        .context("cannot count the CPUs; give --resources")?
        .get();
    let memory = std::fs::read_to_string(MEMINFO_FILE)
        .with_context(|| format!("cannot read {MEMINFO_FILE}; give --resources"))?;
    let memory_bytes = mem_total_bytes(&memory)
        .with_context(|| format!("no MemTotal in {MEMINFO_FILE}; give --resources"))?;
    let file_system = rustix::fs::statvfs(work_dir).with_context(|| {
        format!(
            "cannot measure the file system of {}; give --resources",
            work_dir.display()
        )
    })?;
    let disk_bytes = file_system.f_blocks.saturating_mul(file_system.f_frsize);
    let text = format!(
        "cpus:{cpus};mem:{};disk:{};ports:{PORTS_DEFAULT}",
        set_aside(memory_bytes, GIBIBYTE) / MEBIBYTE,
        set_aside(disk_bytes, 5 * GIBIBYTE) / MEBIBYTE,
    );
    Resources::parse(&text).with_context(|| format!("the detected resources {text:?}"))
}

/// `total` minus `reserve` for the host itself, or half of `total` if that is less than
/// twice `reserve` (Mesos's rule for memory and disk).
fn set_aside(total: u64, reserve: u64) -> u64 {
    if total >= reserve.saturating_mul(2) {
        total - reserve
    } else {
        total / 2
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kibibytes.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_disk_keep_some_for_the_host() {
        assert_eq!(set_aside(16 * GIBIBYTE, GIBIBYTE), 15 * GIBIBYTE);
        assert_eq!(set_aside(GIBIBYTE, GIBIBYTE), GIBIBYTE / 2);
        let meminfo = "MemTotal:        8041608 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(8_041_608 * 1024));
        assert_eq!(mem_total_bytes("nothing"), None);
    }

    #[test]
    fn this_host_has_resources_and_a_boot_id() {
        let resources = detect_resources(Path::new("/")).expect("detected");
        assert!(resources.total("cpus").thousandths() >= 1000, "{resources}");
        assert!(resources.to_string().contains("ports:[31000-32000]"));
        assert!(boot_id().is_ok());
    }
}
