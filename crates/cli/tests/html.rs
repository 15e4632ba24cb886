//! `--html` reports opened in a real headless Chromium, asserting on the live DOM after the
//! page's script ran: the leak is on top and its holder one click away, sorting, filtering and
//! the keyboard work, nothing is logged as an error, no request leaves the page, and names from
//! a hostile snapshot stay inert text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use heapgate_tests::chromium::{Browser, chromium_or_skip};
use heapgate_tests::node_or_skip;
use serde_json::Value;

fn heapgate(args: &[&str], cwd: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HEAPGATE_SECRET")
        .env_remove("HEAPGATE_SECRET_FILE")
        .env_remove("HEAPGATE_VALUE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "heapgate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a Node script that writes snapshots into `dir`; its stdout.
fn node_script(node: &Path, dir: &Path, script: &str) -> String {
    let path = dir.join("app.js");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(node).arg(&path).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", std::fs::canonicalize(path).unwrap().display())
}

/// Opens `report`, and checks what every page must satisfy: the script ran, nothing was
/// logged as an error or warning, no dialog opened, and the only request was the page itself.
fn open_report(browser: &mut Browser, report: &Path) {
    let url = file_url(report);
    browser.open(&url);
    assert!(
        browser.eval("document.body.dataset.renderMs !== undefined") == Value::Bool(true),
        "the report's script did not run: {:?}",
        browser.problems()
    );
}

fn assert_clean(browser: &Browser, report: &Path) {
    assert_eq!(
        browser.problems(),
        Vec::<String>::new(),
        "console or dialogs"
    );
    let url = file_url(report);
    let others: Vec<String> = browser
        .requests()
        .into_iter()
        .filter(|r| *r != url)
        .collect();
    assert_eq!(others, Vec::<String>::new(), "requests besides the page");
}

/// Class names of the visible rows, in order.
const VISIBLE_NAMES: &str = "[...document.querySelectorAll('#rows tbody tr')].filter(r => !r.hidden)\
    .map(r => r.querySelector('.cls').textContent)";

/// Whether the element matched by `selector` is rendered (not inside a collapsed item).
fn visible(browser: &mut Browser, selector: &str) -> bool {
    browser.eval(&format!(
        "(() => {{ const e = document.querySelector({}); return !!e && e.getClientRects().length > 0; }})()",
        serde_json::to_string(selector).unwrap()
    )) == Value::Bool(true)
}

/// Where a screenshot is kept for people to look at (printed).
fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn demo_report_shows_the_leak_and_its_holder() {
    let test = "html::demo_report_shows_the_leak_and_its_holder";
    let (Some(_node), Some(chromium)) = (node_or_skip(test), chromium_or_skip(test)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("demo.html");
    let output = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .args(["demo", "--html"])
        .arg(&report)
        .env("TMPDIR", tmp.path())
        .env_remove("HEAPGATE_SECRET")
        .env_remove("HEAPGATE_SECRET_FILE")
        .env_remove("HEAPGATE_VALUE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("wrote the report to"), "{stderr}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("heapgate demo --html"), "reproduce section");

    let mut browser = Browser::launch(&chromium);
    browser.viewport(1200, 1150);
    open_report(&mut browser, &report);

    // The leak is the first row, and marked.
    let names = browser.eval(VISIBLE_NAMES);
    assert_eq!(names[0], "LeakedRequestContext", "{names}");
    assert_eq!(
        browser.eval("document.querySelector('#rows tbody tr').classList.contains('leak')"),
        Value::Bool(true)
    );
    // Its holder is one click away: the class's tree item opens on the holder's name.
    assert!(!visible(&mut browser, "#holders .holder"));
    browser.eval("document.querySelector('#holders [role=treeitem] > .label').click()");
    assert!(visible(&mut browser, "#holders .holder"));
    assert_eq!(
        browser.eval("document.querySelector('#holders .holder').textContent"),
        "leakedRequestContexts"
    );

    // Keyboard: collapse with ←, open with →, down to the group, open it: the chain shows.
    browser.press("ArrowLeft", "ArrowLeft", 37);
    assert!(!visible(&mut browser, "#holders .holder"));
    browser.press("ArrowRight", "ArrowRight", 39);
    browser.press("ArrowDown", "ArrowDown", 40);
    assert_eq!(
        browser.eval("document.activeElement.getAttribute('aria-level')"),
        "2"
    );
    assert!(!visible(&mut browser, "#holders .step"));
    browser.press("Enter", "Enter", 13);
    assert!(visible(&mut browser, "#holders .step"));
    let chain = browser.eval("document.activeElement.textContent");
    assert!(
        chain
            .as_str()
            .unwrap()
            .contains("leakedRequestContexts (property)"),
        "{chain}"
    );

    browser.eval("window.scrollTo(0, 0)");
    let shot = artifact("demo.png");
    browser.screenshot(&shot);
    eprintln!("screenshot of the demo's report: {}", shot.display());
    assert_clean(&browser, &report);
}

#[test]
fn three_snapshot_report_sorts_filters_and_names_the_holder() {
    let test = "html::three_snapshot_report_sorts_filters_and_names_the_holder";
    let (Some(node), Some(chromium)) = (node_or_skip(test), chromium_or_skip(test)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    node_script(
        &node,
        tmp.path(),
        r#"
const v8 = require("v8");
const dir = process.argv[2];
class LeakedRequestContext { constructor(i) { this.id = i; this.url = "/item/" + i; } }
class TransientBuffer { constructor(i) { this.i = i; this.data = [i, i, i]; } }
const requestCache = new Map();
function handle(i) { requestCache.set("req" + i, new LeakedRequestContext(i)); }
let scratch = [];
const snap = (name) => v8.writeHeapSnapshot(`${dir}/${name}.heapsnapshot`);
setImmediate(() => {
  snap("a");
  for (let i = 0; i < 3000; i++) handle(i);
  for (let i = 0; i < 3000; i++) scratch.push(new TransientBuffer(i));
  setImmediate(() => {
    snap("b");
    scratch = [];
    setImmediate(() => { snap("c"); process.exit(0); });
  });
});
"#,
    );
    let files = ["a.heapsnapshot", "b.heapsnapshot", "c.heapsnapshot"];
    let mut args = vec!["diff"];
    args.extend(files);
    args.extend(["--html", "report.html"]);
    heapgate(&args, tmp.path());
    heapgate(
        &["summary", "c.heapsnapshot", "--html", "summary.html"],
        tmp.path(),
    );
    let report = tmp.path().join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains(
            "heapgate diff a.heapsnapshot b.heapsnapshot c.heapsnapshot --html report.html"
        ),
        "reproduce section"
    );

    let mut browser = Browser::launch(&chromium);
    open_report(&mut browser, &report);
    let names = browser.eval(VISIBLE_NAMES);
    assert_eq!(names[0], "LeakedRequestContext", "{names}");
    // The chart has a line per top class over A, B and C.
    assert_eq!(
        browser.eval("document.querySelectorAll('#charts path.line').length"),
        browser.eval("Math.min(6, document.querySelectorAll('#rows tbody tr').length) * 2")
    );
    // # Kept is a column; the transient class has none kept.
    let kept = browser.eval(
        "[...document.querySelectorAll('#rows thead button')].map(b => b.textContent).indexOf('# Kept')",
    );
    assert!(kept.as_i64().unwrap() > 0, "{kept}");

    // Filter by typing into the box.
    browser.eval("document.getElementById('filter').focus()");
    browser.type_text("transient");
    assert_eq!(
        browser.eval(VISIBLE_NAMES),
        serde_json::json!(["TransientBuffer"])
    );
    let cells = browser.eval(&format!(
        "[...document.querySelectorAll('#rows tbody tr')].find(r => !r.hidden).children[{kept}].textContent"
    ));
    assert_eq!(cells, "0", "TransientBuffer: # Kept");
    browser.eval("const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'))");

    // Sort by each column: descending first, then ascending; Class sorts by name.
    let columns = browser.eval("document.querySelectorAll('#rows thead button').length");
    for column in 0..columns.as_u64().unwrap() {
        let values = format!(
            "(() => {{ const k = document.querySelectorAll('#rows thead button')[{column}].dataset.key; \
               const d = JSON.parse(document.getElementById('heapgate-data').textContent).rows; \
               return [...document.querySelectorAll('#rows tbody tr')].map(r => d[r.dataset.index][k] ?? 0); }})()"
        );
        let click = format!("document.querySelectorAll('#rows thead button')[{column}].click()");
        for round in 0..2 {
            browser.eval(&click);
            let got = browser.eval(&values);
            let got = got.as_array().unwrap();
            let mut want = got.clone();
            let numeric = got.iter().all(Value::is_number);
            want.sort_by(|a, b| {
                if numeric {
                    a.as_f64().unwrap().total_cmp(&b.as_f64().unwrap())
                } else {
                    a.as_str().unwrap().cmp(b.as_str().unwrap())
                }
            });
            let aria = browser.eval(&format!(
                "document.querySelectorAll('#rows thead th')[{column}].getAttribute('aria-sort')"
            ));
            if aria == "descending" {
                want.reverse();
            }
            assert_eq!(got, &want[..], "column {column}, click {round}: {aria}");
        }
    }

    // The holder: the Map in the context variable `requestCache`.
    let id = browser.eval(
        "(() => { const a = [...document.querySelectorAll('#rows a.cls')]\
           .find(a => a.textContent === 'LeakedRequestContext'); a.click(); return a.hash; })()",
    );
    let holder = format!("{} .holder", id.as_str().unwrap());
    assert!(visible(&mut browser, &holder));
    assert_eq!(
        browser.eval(&format!(
            "document.querySelector({}).textContent",
            serde_json::to_string(&holder).unwrap()
        )),
        "requestCache"
    );
    assert_clean(&browser, &report);

    // The summary page of one snapshot.
    let summary = tmp.path().join("summary.html");
    let mut browser = Browser::launch(&chromium);
    open_report(&mut browser, &summary);
    let rows = browser.eval("document.querySelectorAll('#rows tbody tr').length");
    assert!(rows.as_u64().unwrap() > 10, "{rows}");
    assert_eq!(
        browser.eval("document.querySelectorAll('#charts rect.bar').length"),
        8
    );
    assert_clean(&browser, &summary);
}

/// Class and property names that are markup, script and quotes, from a real Node app, and a
/// string value that must not reach the report.
const HOSTILE_APP: &str = r#"
const v8 = require("v8");
const dir = process.argv[2];
const reg = {};
reg["</script><script>window.__pwned=2;alert(2)</script>"] = class { constructor(i) { this.i = i; } };
const named = {
  "x<img src=x onerror=\"window.__pwned=1;alert(1)\">": class { constructor(i) { this.i = i; } },
  "q'uo\"te\u2028line\u2029para & <b>bold</b>": class { constructor(i) { this.i = i; } },
};
const secret = ["hg-secret-", Math.random().toString(36).slice(2)].join("");
globalThis.keep = { token: secret };
globalThis.holder = {};
setImmediate(() => {
  v8.writeHeapSnapshot(`${dir}/a.heapsnapshot`);
  const classes = [reg["</script><script>window.__pwned=2;alert(2)</script>"], ...Object.values(named)];
  const keys = ["<img src=x onerror=alert(1)>", "</script><script>window.__pwned=3</script>", "'\"><svg onload=window.__pwned=4>\u2028"];
  classes.forEach((C, k) => {
    const list = holder[keys[k]] = [];
    for (let i = 0; i < 3000 - 1000 * k; i++) list.push(new C(i));
  });
  v8.writeHeapSnapshot(`${dir}/b.heapsnapshot`);
  console.log(secret);
});
"#;

#[test]
fn hostile_names_render_as_inert_text() {
    let test = "html::hostile_names_render_as_inert_text";
    let (Some(node), Some(chromium)) = (node_or_skip(test), chromium_or_skip(test)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let secret = node_script(&node, tmp.path(), HOSTILE_APP);
    let secret = secret.trim();
    assert!(secret.starts_with("hg-secret-"), "{secret}");
    // File names are markup too: they are in the header and the reproduce section.
    let (a, b) = (
        "a<img src=x onerror=alert(3)>.heapsnapshot",
        "b\"' onload=alert(4) <svg onload=alert(5)>.heapsnapshot",
    );
    std::fs::rename(tmp.path().join("a.heapsnapshot"), tmp.path().join(a)).unwrap();
    std::fs::rename(tmp.path().join("b.heapsnapshot"), tmp.path().join(b)).unwrap();
    heapgate(&["diff", a, b, "--html", "report.html"], tmp.path());
    heapgate(&["summary", b, "--html", "summary.html"], tmp.path());
    // What the snapshot calls these classes and edges, as the JSON report gives them.
    let json = heapgate(&["diff", a, b, "--json"], tmp.path());
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let classes: Vec<String> = json["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.contains(['<', '"', '\u{2028}']))
        .map(str::to_owned)
        .collect();
    assert_eq!(classes.len(), 3, "the planted classes: {classes:?}");
    let edges: Vec<String> = json["classes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["retainers"].as_array().unwrap())
        .flat_map(|g| g["path"].as_array().unwrap())
        .filter_map(|s| s["edge"].as_str())
        .filter(|e| e.contains('<'))
        .map(str::to_owned)
        .collect();
    assert!(!edges.is_empty(), "hostile edge names in the paths");

    for page in ["report.html", "summary.html"] {
        let report = tmp.path().join(page);
        let html = std::fs::read_to_string(&report).unwrap();
        assert!(
            !html.contains(secret),
            "{page}: a string value reached the report"
        );
        assert!(!html.contains("<img"), "{page}: raw markup");
        assert_eq!(html.matches("</script>").count(), 2, "{page}: script ends");

        let mut browser = Browser::launch(&chromium);
        open_report(&mut browser, &report);
        // Every planted name is on the page as text, character for character.
        let shown = browser.eval(
            "[...document.querySelectorAll('#rows .cls, #holders .edge')].map(e => e.textContent)",
        );
        let shown: Vec<&str> = shown
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for name in &classes {
            assert!(shown.contains(&name.as_str()), "{page}: {name:?} not shown");
        }
        let header = browser.eval(
            "[...document.querySelectorAll('.files td.mono')].map(e => e.textContent).join(' ')",
        );
        assert!(header.as_str().unwrap().contains(b), "{page}: {header}");
        let reproduce = browser.eval("document.querySelector('pre').textContent");
        assert!(
            reproduce
                .as_str()
                .unwrap()
                .contains(&format!("'{}'", b.replace('\'', r"'\''"))),
            "{page}: the file name is one shell word: {reproduce}"
        );
        if page == "report.html" {
            for edge in &edges {
                assert!(
                    shown.contains(&edge.as_str()),
                    "{page}: edge {edge:?} not shown"
                );
            }
            // Open every tree item: nothing in there turns into markup either.
            browser.eval(
                "document.querySelectorAll('#holders [aria-expanded]').forEach(e => e.setAttribute('aria-expanded', 'true'))",
            );
        }
        // Nothing ran, nothing was injected.
        assert_eq!(
            browser.eval("[window.__pwned === undefined, document.querySelectorAll('img, [onerror], [onload], script:not([id=heapgate-data])').length]"),
            serde_json::json!([true, 1]),
            "{page}: the only script is the report's own"
        );
        assert!(
            !browser
                .eval("document.body.textContent")
                .as_str()
                .unwrap()
                .contains(secret)
        );
        assert_clean(&browser, &report);
        assert!(
            !browser
                .events()
                .iter()
                .any(|e| e["method"] == "Page.javascriptDialogOpening")
        );
    }
}
