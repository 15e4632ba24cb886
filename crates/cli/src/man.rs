//! `heapgate man`: the manual pages, generated from the same clap definitions as `--help`.
//!
//! heapgate(1) lists its subcommands as heapgate-SUBCOMMAND(1), so each of those is a page too,
//! and heapgate-proxy(1) comes from the sidecar's own definition: `--dir` writes them all.

use clap::CommandFactory;

use crate::args::ManArgs;
use crate::{Cli, Error, Io, output_error};

/// The sidecar's page name.
const PROXY: &str = "heapgate-proxy";

pub(crate) fn run(args: &ManArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let pages = pages();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
        for page in &pages {
            let path = page
                .generate_to(dir)
                .map_err(|e| Error::Failed(format!("cannot write in {}: {e}", dir.display())))?;
            writeln!(io.stdout, "{}", path.display()).map_err(|e| output_error(&e))?;
        }
        return Ok(());
    }
    let wanted = match args.page.as_deref() {
        None => "heapgate.1".to_owned(),
        Some(PROXY) => format!("{PROXY}.1"),
        Some(sub) => format!("heapgate-{}.1", sub.trim_start_matches("heapgate-")),
    };
    let page = pages
        .iter()
        .find(|page| page.get_filename() == wanted)
        .ok_or_else(|| {
            let names: Vec<String> = pages
                .iter()
                .map(|p| p.get_filename().trim_end_matches(".1").to_owned())
                .collect();
            Error::Config(format!(
                "no manual page {:?}; there are: {}",
                args.page.as_deref().unwrap_or_default(),
                names.join(", ")
            ))
        })?;
    page.render(io.stdout).map_err(|e| output_error(&e))
}

/// heapgate(1), heapgate-SUBCOMMAND(1) for each subcommand, and heapgate-proxy(1).
fn pages() -> Vec<clap_mangen::Man> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages: Vec<clap_mangen::Man> = root
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| {
            clap_mangen::Man::new(sub.clone())
                .source(format!("heapgate {}", env!("HEAPGATE_VERSION")))
        })
        .collect();
    pages.insert(0, clap_mangen::Man::new(root));
    #[cfg(feature = "demo")]
    pages.push(clap_mangen::Man::new(heapgate_proxy::Args::command()));
    pages
}
