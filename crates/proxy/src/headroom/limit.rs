//! The app's memory limit, for the headroom rule: `--app-memory-limit`, else the ECS task's,
//! else the memory cgroup of the app's process when the sidecar can see it.
//!
//! The app's cgroup: the app reports its pid over the inspector; when the sidecar shares its PID
//! namespace (same container, ECS `pidMode: task`, Kubernetes `shareProcessNamespace`) and
//! `/proc/PID` is that process (its resident set matches what the app reports), the limit is the
//! lowest `memory.max` (v2) or `memory.limit_in_bytes` (v1) on the path from its cgroup up to the
//! hierarchy's root.
//!
//! On ECS the task metadata ([`crate::ecs`]) gives the task's `Limits.Memory`, the ceiling the
//! app and this sidecar share (on Fargate, the task size). On Kubernetes, pass the app
//! container's limit through the downward API into `HEAPGATE_APP_MEMORY_LIMIT`
//! (`resourceFieldRef: {containerName: app, resource: limits.memory}` gives plain bytes).

use std::path::{Path, PathBuf};

/// Values at or above this mean "no limit" (v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 60;

/// The memory limit of process `pid`'s cgroup, with the file it was read from, looking under
/// `root` (`/` in production). `rss` is what the app reported: a `/proc/PID` whose resident set
/// is far from it is another process (another PID namespace), and yields nothing.
pub(crate) fn cgroup_memory_limit(
    root: &Path,
    pid: u32,
    rss: Option<u64>,
) -> Option<(u64, String)> {
    let proc = root.join(format!("proc/{pid}"));
    if let Some(rss) = rss {
        let status = std::fs::read_to_string(proc.join("status")).ok()?;
        let seen = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?
            * 1024;
        let (low, high) = (seen.min(rss), seen.max(rss));
        if high - low > (high / 4).max(16 << 20) {
            return None;
        }
    }
    let cgroups = std::fs::read_to_string(proc.join("cgroup")).ok()?;
    let base = root.join("sys/fs/cgroup");
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            if let Some(found) = lowest_limit(&base.join("memory"), path, "memory.limit_in_bytes") {
                return Some(found);
            }
        } else if id == "0"
            && controllers.is_empty()
            && base.join("cgroup.controllers").exists()
            && let Some(found) = lowest_limit(&base, path, "memory.max")
        {
            return Some(found);
        }
    }
    None
}

/// The lowest limit in `file` from `mount/path` up to `mount`. A path that does not exist below
/// the mount (a namespaced view, where the app's cgroup is the mount's root) reads the root.
fn lowest_limit(mount: &Path, path: &str, file: &str) -> Option<(u64, String)> {
    let mut dir: PathBuf = mount.join(path.trim_start_matches('/'));
    if !dir.is_dir() {
        dir = mount.to_path_buf();
    }
    let mut best: Option<(u64, String)> = None;
    loop {
        let at = dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&at)
            && let Ok(value) = text.trim().parse::<u64>()
            && value < UNLIMITED
            && best.as_ref().is_none_or(|(b, _)| value < *b)
        {
            best = Some((value, format!("cgroup {}", at.display())));
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_the_apps_cgroup_limit_v1_and_v2() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            &r.join("proc/42/status"),
            "Name:\tnode\nVmRSS:\t  204800 kB\n",
        );
        write(&r.join("proc/42/cgroup"), "4:memory:/app/x\n0::/\n");
        write(
            &r.join("sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(
            &r.join("sys/fs/cgroup/memory/app/memory.limit_in_bytes"),
            "2147483648\n",
        );
        write(
            &r.join("sys/fs/cgroup/memory/app/x/memory.limit_in_bytes"),
            "838860800\n",
        );
        let (limit, from) = cgroup_memory_limit(r, 42, Some(200 << 20)).unwrap();
        assert_eq!(limit, 800 << 20);
        assert!(from.ends_with("app/x/memory.limit_in_bytes"), "{from}");
        // Another process behind that pid (another PID namespace): nothing.
        assert_eq!(cgroup_memory_limit(r, 42, Some(2 << 30)), None);
        assert_eq!(cgroup_memory_limit(r, 43, None), None);
        // v2, the parent's limit is lower; "max" is no limit.
        write(&r.join("proc/7/status"), "VmRSS:\t1000 kB\n");
        write(&r.join("proc/7/cgroup"), "0::/k/pod\n");
        write(&r.join("sys/fs/cgroup/cgroup.controllers"), "memory\n");
        write(&r.join("sys/fs/cgroup/k/memory.max"), "536870912\n");
        write(&r.join("sys/fs/cgroup/k/pod/memory.max"), "max\n");
        assert_eq!(cgroup_memory_limit(r, 7, None).unwrap().0, 512 << 20);
    }
}
