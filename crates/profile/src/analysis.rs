//! Live bytes by allocation site, and their growth across a series of profiles.
//!
//! **Sites.** V8 records, for each sampled object, the stack of functions that allocated it; a
//! frame's line:column is where the allocating *function* starts (V8 keeps function positions,
//! not statements). Bottom-up groups live bytes by the innermost frame, the allocation site;
//! top-down is the call tree with each node's inclusive bytes.
//!
//! **Growth.** Two profiles: a site's live bytes in the second minus the first. Three profiles
//! A, B, C (heapgate's `# Kept` for profiles): the growth a site showed at B that is *still
//! there* at C, `max(0, min(B − A, C − A))`. A leak keeps what it gained, so it counts fully; a
//! transient burst that was live when B was taken and freed by C counts zero, however big it was
//! at B; a site that shrank counts zero. The rule is applied to each exact allocation stack and
//! summed over the stacks of a site or under a caller, so growth adds up in both views (a flame
//! graph's widths stay consistent) and a shrinking caller cannot hide a growing one. It needs
//! only bytes per stack, so it works on both formats and across a restart of V8's sampling
//! (which renumbers samples). Objects get the same rule.

use std::collections::HashMap;

use serde::Serialize;

use crate::profile::{Format, Frame, Profile};

/// Live bytes and objects allocated at one site (bottom-up) in one profile.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub frame: Frame,
    pub bytes: u64,
    pub objects: u64,
    /// The heaviest stack that reached this site, outermost frame first.
    pub stack: Vec<Frame>,
}

/// One node of a top-down tree: a call path, with inclusive bytes and objects per profile.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    pub frame: Frame,
    /// Inclusive live bytes, one per profile.
    pub bytes: Vec<u64>,
    pub objects: Vec<u64>,
    /// Growth by the rule in the module docs, summed over the stacks under this node (0 for one
    /// profile): a node's growth is its own plus its children's.
    pub growth: i64,
    pub children: Vec<TreeNode>,
}

/// One profile, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub format: Format,
    pub interval: Option<u64>,
    pub total_bytes: u64,
    pub total_objects: u64,
    /// Bottom-up, most bytes first.
    pub sites: Vec<Site>,
    /// Top-down; the root is a `(root)` frame holding everything.
    pub tree: TreeNode,
}

/// One allocation site across the series.
#[derive(Debug, Clone, Serialize)]
pub struct SiteDiff {
    pub frame: Frame,
    /// Live bytes and objects at the site, one per profile.
    pub bytes: Vec<u64>,
    pub objects: Vec<u64>,
    /// Two profiles: last − first. Three: kept growth (module docs).
    pub growth_bytes: i64,
    pub growth_objects: i64,
    /// The heaviest stack that reached the site (by live bytes in the last profile), outermost
    /// frame first.
    pub stack: Vec<Frame>,
}

/// Two or three profiles compared.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Live bytes and objects per profile.
    pub total_bytes: Vec<u64>,
    pub total_objects: Vec<u64>,
    /// Total growth by the same rule: the sum over stacks.
    pub growth_bytes: i64,
    /// Bottom-up, by growth of bytes, largest first.
    pub sites: Vec<SiteDiff>,
    /// Top-down with growth per call path.
    pub tree: TreeNode,
    /// Things that make the comparison doubtful (different sampling intervals…).
    pub warnings: Vec<String>,
}

fn root_frame() -> Frame {
    Frame {
        function: "(root)".into(),
        url: String::new(),
        line: 0,
        column: 0,
    }
}

/// The growth rule of the module docs over one value per profile.
fn growth(values: &[u64]) -> i64 {
    let delta = |i: usize| values[i] as i64 - values[0] as i64;
    match values.len() {
        0 | 1 => 0,
        2 => delta(1),
        _ => delta(1).min(delta(values.len() - 1)).max(0),
    }
}

/// A mutable top-down tree under construction: inclusive and own (exactly this stack) bytes
/// and objects per profile.
struct Trie {
    frame: Frame,
    bytes: Vec<u64>,
    objects: Vec<u64>,
    own_bytes: Vec<u64>,
    own_objects: Vec<u64>,
    children: HashMap<Frame, Trie>,
}

/// A site's numbers gathered from the stacks that end there.
struct SiteAcc {
    bytes: Vec<u64>,
    objects: Vec<u64>,
    growth_bytes: i64,
    growth_objects: i64,
    /// The heaviest stack ending here (by last-profile bytes, then growth), outermost first.
    stack: Vec<Frame>,
    stack_weight: (u64, i64),
}

impl Trie {
    fn new(frame: Frame, n: usize) -> Self {
        Trie {
            frame,
            bytes: vec![0; n],
            objects: vec![0; n],
            own_bytes: vec![0; n],
            own_objects: vec![0; n],
            children: HashMap::new(),
        }
    }

    fn build(profiles: &[&Profile]) -> Trie {
        let n = profiles.len();
        let mut root = Trie::new(root_frame(), n);
        for (i, profile) in profiles.iter().enumerate() {
            for stack in &profile.stacks {
                let mut node = &mut root;
                node.bytes[i] += stack.bytes;
                node.objects[i] += stack.objects;
                for &f in stack.frames.iter().rev() {
                    let frame = &profile.frames[f];
                    node = node
                        .children
                        .entry(frame.clone())
                        .or_insert_with(|| Trie::new(frame.clone(), n));
                    node.bytes[i] += stack.bytes;
                    node.objects[i] += stack.objects;
                }
                node.own_bytes[i] += stack.bytes;
                node.own_objects[i] += stack.objects;
            }
        }
        root
    }

    /// The finished tree; every stack's growth (the rule in the module docs, applied to each
    /// exact stack) is added to its node, its callers and its site, so growth adds up.
    fn finish(self, path: &mut Vec<Frame>, sites: &mut HashMap<Frame, SiteAcc>) -> TreeNode {
        let own_growth = growth(&self.own_bytes);
        let own_growth_objects = growth(&self.own_objects);
        let is_root = path.is_empty() && self.frame == root_frame();
        if !is_root {
            path.push(self.frame.clone());
        }
        if !is_root
            && self
                .own_bytes
                .iter()
                .chain(&self.own_objects)
                .any(|&v| v > 0)
        {
            let n = self.own_bytes.len();
            let site = sites.entry(self.frame.clone()).or_insert_with(|| SiteAcc {
                bytes: vec![0; n],
                objects: vec![0; n],
                growth_bytes: 0,
                growth_objects: 0,
                stack: Vec::new(),
                stack_weight: (0, i64::MIN),
            });
            for i in 0..n {
                site.bytes[i] += self.own_bytes[i];
                site.objects[i] += self.own_objects[i];
            }
            site.growth_bytes += own_growth;
            site.growth_objects += own_growth_objects;
            let weight = (*self.own_bytes.last().unwrap_or(&0), own_growth);
            if weight > site.stack_weight {
                site.stack_weight = weight;
                site.stack = path.clone();
            }
        }
        let mut children: Vec<TreeNode> = self
            .children
            .into_values()
            .map(|child| child.finish(path, sites))
            .collect();
        if !is_root {
            path.pop();
        }
        // Growth first, then size, then name: stable output for tests and diffs of reports.
        children.sort_by(|a, b| {
            (b.growth, b.bytes.last(), &a.frame).cmp(&(a.growth, a.bytes.last(), &b.frame))
        });
        TreeNode {
            growth: own_growth + children.iter().map(|c| c.growth).sum::<i64>(),
            frame: self.frame,
            bytes: self.bytes,
            objects: self.objects,
            children,
        }
    }
}

/// The top-down tree and the bottom-up sites of a series (or of one profile).
fn analyse(profiles: &[&Profile]) -> (TreeNode, Vec<SiteDiff>) {
    let mut sites = HashMap::new();
    let tree = Trie::build(profiles).finish(&mut Vec::new(), &mut sites);
    let sites = sites
        .into_iter()
        .map(|(frame, acc)| SiteDiff {
            frame,
            bytes: acc.bytes,
            objects: acc.objects,
            growth_bytes: acc.growth_bytes,
            growth_objects: acc.growth_objects,
            stack: acc.stack,
        })
        .collect();
    (tree, sites)
}

/// Bottom-up and top-down views of one profile.
pub fn summarize(profile: &Profile) -> Summary {
    let (tree, sites) = analyse(&[profile]);
    let mut sites: Vec<Site> = sites
        .into_iter()
        .map(|s| Site {
            frame: s.frame,
            bytes: s.bytes[0],
            objects: s.objects[0],
            stack: s.stack,
        })
        .collect();
    sites.sort_by(|a, b| (b.bytes, &a.frame).cmp(&(a.bytes, &b.frame)));
    Summary {
        format: profile.format,
        interval: profile.interval,
        total_bytes: profile.total_bytes(),
        total_objects: profile.total_objects(),
        sites,
        tree,
    }
}

/// Compares a series of two or three profiles of one process, oldest first.
///
/// # Panics
/// If `profiles` holds fewer than two or more than three.
pub fn compare(profiles: &[Profile]) -> Comparison {
    assert!(
        (2..=3).contains(&profiles.len()),
        "compare takes two or three profiles"
    );
    let refs: Vec<&Profile> = profiles.iter().collect();
    let (tree, mut sites) = analyse(&refs);
    sites.sort_by(|a, b| {
        (b.growth_bytes, b.bytes.last(), &a.frame).cmp(&(a.growth_bytes, a.bytes.last(), &b.frame))
    });
    let mut warnings = Vec::new();
    let intervals: Vec<Option<u64>> = profiles.iter().map(|p| p.interval).collect();
    if intervals.windows(2).any(|w| w[0] != w[1]) {
        let shown: Vec<String> = intervals
            .iter()
            .map(|i| i.map_or_else(|| "unknown".to_owned(), |i| format!("{i} bytes")))
            .collect();
        warnings.push(format!(
            "the profiles were sampled at different intervals ({}); object counts compare poorly",
            shown.join(", ")
        ));
    }
    Comparison {
        total_bytes: profiles.iter().map(Profile::total_bytes).collect(),
        total_objects: profiles.iter().map(Profile::total_objects).collect(),
        growth_bytes: tree.growth,
        sites,
        tree,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::growth;

    #[test]
    fn growth_rule() {
        assert_eq!(growth(&[10, 30]), 20);
        assert_eq!(growth(&[30, 10]), -20);
        // A leak keeps what it gained.
        assert_eq!(growth(&[10, 30, 50]), 20);
        // A burst live at B and gone by C.
        assert_eq!(growth(&[10, 500, 10]), 0);
        // Partly freed: only what is still there.
        assert_eq!(growth(&[10, 500, 60]), 50);
        assert_eq!(growth(&[50, 10, 5]), 0);
    }
}
