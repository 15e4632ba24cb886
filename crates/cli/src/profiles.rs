//! `diff` and `summary` on sampling heap profiles (`.heapprofile` or pprof), chosen by the
//! files' content: live bytes by allocation site, top-down and bottom-up, and their growth.
//!
//! The snapshot commands stay as they are; this module only takes over when the files are
//! profiles. Mixing profiles and snapshots in one diff is a usage error.

use std::path::{Path, PathBuf};

use heapgate_profile::{
    Comparison, Kind, Profile, compare, render_diff, render_summary, summarize,
};

use crate::args::{DiffArgs, SummaryArgs};
use crate::{Error, Io, output_error, warn};

/// What each of `files` holds (local files and `s3://` objects, by their first bytes). A file
/// that cannot be opened, or is not a regular file, is `Unknown`: the snapshot reader takes it
/// as before.
fn kinds(files: &[PathBuf]) -> Result<Vec<Kind>, Error> {
    files
        .iter()
        .map(|file| match s3_url(file) {
            Some(url) => {
                let prefix = crate::stored::object_bytes(url, Some(64 * 1024))?;
                Ok(heapgate_profile::sniff_reader(&prefix[..]).unwrap_or(Kind::Unknown))
            }
            // Only regular files are looked into: reading the start of a pipe (`<(zcat …)`)
            // would take those bytes from the snapshot reader.
            None if !std::fs::metadata(file).is_ok_and(|m| m.is_file()) => Ok(Kind::Unknown),
            None => Ok(heapgate_profile::sniff_file(file).unwrap_or(Kind::Unknown)),
        })
        .collect()
}

fn s3_url(file: &Path) -> Option<&str> {
    file.to_str().filter(|f| f.starts_with("s3://"))
}

/// Whether `files` are profiles (`true`), snapshots or unknown (`false`; the snapshot path
/// takes them), or a usage error when both kinds are given.
pub(crate) fn are_profiles(files: &[PathBuf]) -> Result<bool, Error> {
    let kinds = kinds(files)?;
    let profile = |k: &Kind| k.is_profile() || *k == Kind::CpuProfile;
    let Some(p) = kinds.iter().position(profile) else {
        return Ok(false);
    };
    if let Some(s) = kinds.iter().position(|k| *k == Kind::Snapshot) {
        return Err(Error::Config(format!(
            "cannot compare a heap profile with a heap snapshot: {} is a profile, {} is a \
             snapshot; diff profiles with profiles and snapshots with snapshots",
            files[p].display(),
            files[s].display()
        )));
    }
    Ok(true)
}

/// Reads one profile, local or `s3://`; errors name the file.
pub(crate) fn read(file: &Path) -> Result<Profile, Error> {
    let named =
        |e: heapgate_profile::ProfileError| Error::Failed(format!("{}: {e}", file.display()));
    match s3_url(file) {
        Some(url) => {
            let bytes = crate::stored::object_bytes(url, None)?;
            heapgate_profile::read_from(&bytes[..]).map_err(named)
        }
        None => heapgate_profile::read(file).map_err(named),
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, Error> {
    let mut json = serde_json::to_string_pretty(value).map_err(|e| Error::Failed(e.to_string()))?;
    json.push('\n');
    Ok(json)
}

/// `heapgate diff` on two or three profiles.
pub(crate) fn diff(args: &DiffArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if args.sort.is_some() {
        return Err(Error::Config(
            "--sort orders snapshot classes; profile sites are ordered by growth".into(),
        ));
    }
    if let Some(out) = &args.html {
        crate::html::check_target(out, &args.files)?;
    }
    let profiles = args
        .files
        .iter()
        .map(|f| read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let comparison = compare(&profiles);
    for message in &comparison.warnings {
        warn(io, message);
    }
    let text = if args.json {
        json(&comparison)?
    } else {
        render_diff(&comparison, args.top)
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))?;
    // The report is written before the gate decides, as for snapshots.
    if let Some(out) = &args.html {
        let mut words = vec!["heapgate".to_owned(), "diff".to_owned()];
        words.extend(args.files.iter().map(|f| f.display().to_string()));
        if let Some(limit) = args.fail_on_growth {
            words.extend(["--fail-on-growth".to_owned(), limit.to_string()]);
        }
        words.extend(["--html".to_owned(), out.display().to_string()]);
        let page = crate::html_profile::diff_page(
            &comparison,
            &args.files,
            &crate::html::command_line(words),
            (io.now)(),
        )?;
        crate::html::write(out, &args.files, &page, io)?;
    }
    if let Some(limit) = args.fail_on_growth {
        gate(&comparison, limit)?;
    }
    Ok(())
}

/// Exit 3 when a site's growth (kept growth for three profiles) is above `limit` bytes.
fn gate(comparison: &Comparison, limit: u64) -> Result<(), Error> {
    let offending: Vec<String> = comparison
        .sites
        .iter()
        .filter(|s| s.growth_bytes > 0 && s.growth_bytes as u64 > limit)
        .map(|s| format!("{} (+{} bytes)", s.frame, s.growth_bytes))
        .collect();
    if offending.is_empty() {
        return Ok(());
    }
    let what = if comparison.total_bytes.len() == 3 {
        "kept live bytes grew"
    } else {
        "live bytes grew"
    };
    Err(Error::Growth(format!(
        "--fail-on-growth {limit}: {what} by more than {limit} bytes at {} allocation site{}: {}",
        offending.len(),
        if offending.len() == 1 { "" } else { "s" },
        offending.join(", ")
    )))
}

/// `heapgate summary` on one profile.
pub(crate) fn summary(args: &SummaryArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let files = [args.file.clone()];
    if let Some(out) = &args.html {
        crate::html::check_target(out, &files)?;
    }
    let profile = read(&args.file)?;
    let summary = summarize(&profile);
    let text = if args.json {
        json(&summary)?
    } else {
        render_summary(&summary, args.top)
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))?;
    if let Some(out) = &args.html {
        let command = crate::html::command_line([
            "heapgate".to_owned(),
            "summary".to_owned(),
            args.file.display().to_string(),
            "--html".to_owned(),
            out.display().to_string(),
        ]);
        let page = crate::html_profile::summary_page(&summary, &files, &command, (io.now)())?;
        crate::html::write(out, &files, &page, io)?;
    }
    Ok(())
}

/// `heapgate fetch --profile --html FILE`: the report of the profiles just taken (the summary
/// of one, the diff of two or three).
pub(crate) fn write_report(
    files: &[PathBuf],
    fetch_command: &str,
    out: &Path,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let profiles = files
        .iter()
        .map(|f| read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let page = match profiles.as_slice() {
        [one] => {
            crate::html_profile::summary_page(&summarize(one), files, fetch_command, (io.now)())?
        }
        _ => {
            let comparison = compare(&profiles);
            for message in &comparison.warnings {
                warn(io, message);
            }
            crate::html_profile::diff_page(&comparison, files, fetch_command, (io.now)())?
        }
    };
    crate::html::write(out, files, &page, io)
}
