//! `heapgate redact IN OUT`: the proxy's `--redact strings` for a file already taken.

use std::fs::File;
use std::io::{BufWriter, Write};

use heapgate_snapshot::{Encoding, decoded, redact};

use crate::args::RedactArgs;
use crate::{Error, Io};

/// zstd level for a redacted `.zst`: the proxy's, fast enough to never matter here.
const ZSTD_LEVEL: i32 = 3;

pub(crate) fn run(args: &RedactArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let input = File::open(&args.input)
        .map_err(|e| Error::Failed(format!("{}: {e}", args.input.display())))?;
    let (encoding, reader) =
        decoded(input).map_err(|e| Error::Failed(format!("{}: {e}", args.input.display())))?;
    let dir = match args.output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if args.output.symlink_metadata().is_ok() {
        return Err(Error::Failed(format!(
            "{} exists; heapgate never overwrites a file",
            args.output.display()
        )));
    }
    // Written beside OUT and given its name only when complete (deleted on any failure).
    let temp = tempfile::Builder::new()
        .prefix(".heapgate-redact-")
        .permissions(crate::mode::snapshot())
        .tempfile_in(dir)
        .map_err(|e| Error::Failed(format!("cannot write in {}: {e}", dir.display())))?;
    let out_encoding = if args.plain {
        Encoding::Plain
    } else {
        encoding
    };
    let failed = |e: &dyn std::fmt::Display| {
        Error::Failed(format!(
            "{} -> {}: {e}",
            args.input.display(),
            args.output.display()
        ))
    };
    let file = BufWriter::new(temp.as_file());
    let stats = match out_encoding {
        Encoding::Plain => redact(reader, file).map_err(|e| failed(&e))?,
        Encoding::Zstd => {
            let mut encoder =
                zstd::stream::write::Encoder::new(file, ZSTD_LEVEL).map_err(|e| failed(&e))?;
            let stats = redact(reader, &mut encoder).map_err(|e| failed(&e))?;
            encoder
                .finish()
                .and_then(|mut f| f.flush())
                .map_err(|e| failed(&e))?;
            stats
        }
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::new(6));
            let stats = redact(reader, &mut encoder).map_err(|e| failed(&e))?;
            encoder
                .finish()
                .and_then(|mut f| f.flush())
                .map_err(|e| failed(&e))?;
            stats
        }
    };
    temp.as_file().sync_all().map_err(|e| failed(&e))?;
    temp.persist_noclobber(&args.output)
        .map_err(|e| failed(&e.error))?;
    let _ = writeln!(
        io.stderr,
        "heapgate: redacted {} of {} strings ({} string values kept: the same text is also a name)",
        stats.redacted, stats.strings, stats.shared_kept
    );
    Ok(())
}
