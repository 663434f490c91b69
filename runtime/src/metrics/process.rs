//! The process collector: CPU, memory, file descriptors and threads of this process, under
//! the names every Prometheus client library uses (client_golang's `process_collector.go`,
//! the Rust `prometheus` crate's `process_collector.rs`), so stock dashboards and alerts on
//! `process_resident_memory_bytes` or `rate(process_cpu_seconds_total[5m])` work as they are.
//!
//! Read from `/proc/self` at each scrape, on Linux only; elsewhere (and if `/proc` is not
//! mounted) the families are simply absent. `prometheus-client` 0.25 ships no process
//! collector, and the crates that add one to it pull in more than these few files' worth.
//!
//! | family | from |
//! | --- | --- |
//! | `process_cpu_seconds_total` | `/proc/self/stat` utime + stime, in USER_HZ (100 per second on every Linux ABI) |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes` | `/proc/self/status` `VmRSS`, `VmSize` |
//! | `process_threads` | `/proc/self/status` `Threads` |
//! | `process_open_fds` | entries of `/proc/self/fd` |
//! | `process_max_fds` | `/proc/self/limits` "Max open files" (soft limit) |
//! | `process_start_time_seconds` | `/proc/self/stat` starttime + `/proc/stat` btime |

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Clock ticks per second in `/proc` times: USER_HZ, fixed at 100 by the Linux ABI.
const USER_HZ: f64 = 100.0;

/// This process's resource use at one moment; a field is `None` when its source could not
/// be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self`; every field `None` where `/proc` is missing.
    pub(super) fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let stat = read("/proc/self/stat");
        let stat = stat.as_deref().map(stat_fields).unwrap_or_default();
        let status = read("/proc/self/status").unwrap_or_default();
        let boot_time = read("/proc/stat").and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let tick = |index: usize| stat.get(index).and_then(|v| v.parse::<f64>().ok());
        Self {
            cpu_seconds: tick(13)
                .zip(tick(14))
                .map(|(user, system)| (user + system) / USER_HZ),
            resident_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
            virtual_bytes: status_kib(&status, "VmSize:").map(|kib| kib * 1024),
            threads: status_kib(&status, "Threads:"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: read("/proc/self/limits").and_then(|text| max_open_files(&text)),
            start_time_seconds: tick(21)
                .zip(boot_time)
                .map(|(ticks, boot)| boot + ticks / USER_HZ),
        }
    }
}

/// `/proc/<pid>/stat`'s fields, numbered as in proc(5) minus one (so `utime`, field 14, is
/// index 13). The command name may hold spaces and parentheses: it ends at the last `)`.
fn stat_fields(stat: &str) -> Vec<String> {
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return Vec::new();
    };
    let pid = head.split_whitespace().next().unwrap_or_default();
    [pid.to_owned(), "comm".to_owned()]
        .into_iter()
        .chain(rest.split_whitespace().map(str::to_owned))
        .collect()
}

/// The number after `key` in `/proc/self/status` (kB for memory lines).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The soft "Max open files" limit in `/proc/self/limits` (`None` if unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Encodes [`ProcessStats::read`] on each scrape.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let stats = ProcessStats::read();
        if let Some(v) = stats.cpu_seconds {
            encoder
                .encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds",
                    None,
                    MetricType::Counter,
                )?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        let gauges: [(&str, &str, Option<f64>); 6] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                stats.threads.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                stats.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                stats.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Gauge)?
                    .encode_gauge(&v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_split_stat_after_a_command_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 12345 1000000 300";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "4242");
        assert_eq!(fields[2], "S", "state, field 3");
        assert_eq!(fields[13], "250", "utime, field 14");
        assert_eq!(fields[14], "50", "stime, field 15");
        assert_eq!(fields[19], "7", "num_threads, field 20");
        assert_eq!(fields[21], "12345", "starttime, field 22");
    }

    #[test]
    fn should_read_limits_and_status_lines() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let status = "Name:\tpanoptes\nVmSize:\t  123456 kB\nVmRSS:\t   2048 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048));
        assert_eq!(status_kib(status, "Threads:"), Some(9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn should_read_this_process_on_linux() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0), "{stats:?}");
        assert!(stats.threads.is_some_and(|t| t >= 1), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        let start = stats.start_time_seconds.expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start} vs {now}"
        );
    }
}
