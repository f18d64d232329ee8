//! `mapagent pages DIR|FILE --image NAME -o page-map.html`: the page map of an image.

use crate::cmd::dirty::{self as dirty_cmd, Args as DirtyArgs};
use crate::error::Result;
use crate::page_map;
use crate::snapshot::Which;
use std::path::Path;

pub fn run(
    path: &Path,
    pid: Option<u32>,
    snapshot: Which,
    image: &str,
    output: &Path,
) -> Result<i32> {
    let a = DirtyArgs {
        pid,
        snapshot,
        image: Some(image.to_string()),
        json: false,
        // Every symbol, so clean pages are named too.
        all: true,
        top: 0,
    };
    let (reports, truncated) = dirty_cmd::reports(path, &a)?;
    if reports.len() > 1 {
        let pids: Vec<String> = reports.iter().map(|r| r.pid.to_string()).collect();
        eprintln!(
            "mapagent: note: {} processes loaded '{image}' (pids {}); one page map each",
            reports.len(),
            pids.join(", ")
        );
    }
    let mut html = String::new();
    for r in &reports {
        let doc = page_map::render(r, &format!("{image}: page map, pid {}", r.pid));
        if html.is_empty() {
            html = doc;
        } else {
            // Several processes: one document, their bodies one after another.
            let body = doc
                .split_once("<body>")
                .map_or("", |x| x.1)
                .trim_end()
                .trim_end_matches("</body></html>");
            let at = html.rfind("</body>").unwrap_or(html.len());
            html.insert_str(at, body);
        }
    }
    crate::output::write(output, &[path], html.as_bytes())?;
    eprintln!("mapagent: wrote {}", output.display());
    Ok(super::exit_code(truncated))
}
