//! The mapagent command line. Each subcommand is a module under `cmd`.

use clap::{Parser, Subcommand};
use mapagent::text::At;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mapagent",
    version,
    about = "Record and inspect a process's images, mappings and pages from inside it"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD with libmapagent.so preloaded; exits with CMD's status.
    Run {
        /// Directory for the record files (default ./mapagent-data).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Print every record of a file (or every file of a directory), one line each.
    Dump {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The address space at a moment, like pmap.
    Maps {
        /// A record file or a directory of them.
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// CLOCK_MONOTONIC nanoseconds, +SECONDS after start, or 'end'.
        #[arg(long, default_value = "end", value_parser = At::parse)]
        at: At,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The recordings as a perf.data that perf script/report read (MMAP2, COMM, FORK, EXIT).
    Perf {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Where to write it (written beside it and renamed into place; never over an input, a record file, or through a symlink).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Merge the agent's mapping records into a perf.data recorded by `perf record`.
    Inject {
        /// The recording made by perf record.
        #[arg(short = 'i', long = "input")]
        input: PathBuf,
        /// Where to write it (written beside it and renamed into place; never over an input, a record file, or through a symlink).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// The agent's records (a file or directory).
        path: PathBuf,
        /// perf's build-id cache, for images perf cannot open by name (default ~/.debug; pass
        /// the same to perf with `perf --buildid-dir DIR report`).
        #[arg(long = "buildid-dir")]
        buildid_dir: Option<PathBuf>,
        /// Name memfd images //anon without build-id, so perf looks their symbols up in
        /// /tmp/perf-PID.map (write it with `mapagent perf-map`) instead of the build-id cache.
        #[arg(long = "memfd-as-anon")]
        memfd_as_anon: bool,
    },
    /// Write /tmp/perf-PID.map files naming code perf sees as anonymous: ELF images copied into
    /// anonymous executable memory, and memfd images (with `inject --memfd-as-anon`).
    PerfMap {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// Where to write perf-PID.map (default /tmp, where perf looks).
        #[arg(long = "dir", default_value = "/tmp")]
        dir: PathBuf,
    },
    /// Which symbols of which image sit on private dirty (copied-on-write) pages, and the
    /// relocations that dirtied them, from a page snapshot (default: the one taken at exit).
    Dirty {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// A snapshot label (mapagent_snapshot("LABEL"), "exit", "signal", "interval") or
        /// 'end' for the last one.
        #[arg(long, default_value = "end", value_parser = mapagent::snapshot::Which::parse)]
        snapshot: mapagent::snapshot::Which,
        /// Only images whose path contains NAME.
        #[arg(long, value_name = "NAME")]
        image: Option<String>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Every sized symbol and section, clean ones too.
        #[arg(long)]
        all: bool,
        /// Symbols listed per image.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Private dirty pages per image and per symbol between two recordings (before and after
    /// a patch), with totals.
    Diff {
        /// The recording before (a file or directory).
        before: PathBuf,
        /// The recording after.
        after: PathBuf,
        #[arg(long, default_value = "end", value_parser = mapagent::snapshot::Which::parse)]
        snapshot: mapagent::snapshot::Which,
        /// Only images whose path contains NAME.
        #[arg(long, value_name = "NAME")]
        image: Option<String>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Unchanged images too, and every changed symbol.
        #[arg(long)]
        all: bool,
        /// Changed symbols listed per image.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Run CMD under the agent and fail (exit 1) when an image has more private dirty pages
    /// than allowed, listing the symbols on them: a gate for a library's CI.
    Check {
        /// IMAGE=PAGES: at most PAGES copied-on-write pages in every image whose path contains
        /// IMAGE (repeat for several).
        #[arg(long = "max-dirty", value_name = "IMAGE=PAGES", required = true)]
        max_dirty: Vec<mapagent::check::Limit>,
        /// Keep the records here (default: a temporary directory, kept only on failure).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// The violations as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// An image's pages as a self-contained HTML page: every page of every segment a cell
    /// coloured clean / dirty / not present; hovering a cell lists its symbols.
    Pages {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, default_value = "end", value_parser = mapagent::snapshot::Which::parse)]
        snapshot: mapagent::snapshot::Which,
        /// The image (a substring of its path).
        #[arg(long, value_name = "NAME")]
        image: String,
        /// Where to write it (written beside it and renamed into place; never over an input, a record file, or through a symlink).
        #[arg(short = 'o', long = "output", default_value = "page-map.html")]
        output: PathBuf,
    },
    /// System V shared memory segments (like ipcs -m, the same on every kernel); with
    /// --record, the shmat/shmdt calls the agent recorded.
    Shm {
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// A recording (file or directory) whose shmat/shmdt calls to list.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// The address space from an ELF core dump (kernel or gcore): every mapping, dumped or not,
    /// [heap]/[stack]/[vdso] named, modules with load bias and build-id, sections per mapping.
    Core {
        /// The core file (gcore's, or the kernel's).
        core: PathBuf,
        /// The executable, when the core cannot name it.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// The agent's records of that process: inodes, aliases, kept copies, SysV names.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Write the dumped bytes of the mapping containing ADDR (0x...) or named like NAME.
        #[arg(long, value_name = "ADDR|NAME", requires = "output")]
        extract: Option<String>,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Memory use over time (the statm columns the agent samples at start, every
    /// MAPAGENT_INTERVAL_MS and at exit), as a table, JSON, or an SVG chart.
    Mem {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Also draw the chart into this SVG file.
        #[arg(long, value_name = "OUT")]
        svg: Option<PathBuf>,
    },
    /// Watched globals (MAPAGENT_WATCH) over time; with --perf, the values current during
    /// each process's perf samples (record with perf record -k CLOCK_MONOTONIC).
    Watch {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "PERF_DATA")]
        perf: Option<PathBuf>,
        /// With --perf: count values with numbers and quoted strings replaced by N and '?'
        /// (one line per SQL statement shape).
        #[arg(long)]
        normalize: bool,
        /// With --perf: values listed per watch and process.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Every loaded image: load bias, build-id, load and unload times.
    Images {
        /// A record file, or a directory of them (every *.mrec in it).
        path: PathBuf,
        /// Only this process (the pid /proc showed; a pid that exec'd shows the program it ran at the moment asked for, or last).
        #[arg(long)]
        pid: Option<u32>,
        /// JSON on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    // Output piped into `head` must not end in a panic.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run { output, cmd } => mapagent::cmd::run::run(output, &cmd),
        Cmd::Dump { path, json } => mapagent::cmd::dump::run(&path, json),
        Cmd::Maps {
            path,
            pid,
            at,
            json,
        } => mapagent::cmd::maps::run(&path, pid, at, json),
        Cmd::Images { path, pid, json } => mapagent::cmd::images::run(&path, pid, json),
        Cmd::Perf { path, output } => mapagent::cmd::perf::run(&path, &output),
        Cmd::Inject {
            input,
            output,
            path,
            buildid_dir,
            memfd_as_anon,
        } => mapagent::cmd::inject::run(&input, &output, &path, buildid_dir, memfd_as_anon),
        Cmd::PerfMap { path, pid, dir } => mapagent::cmd::perf_map::run(&path, pid, &dir),
        Cmd::Dirty {
            path,
            pid,
            snapshot,
            image,
            json,
            all,
            top,
        } => mapagent::cmd::dirty::run(
            &path,
            &mapagent::cmd::dirty::Args {
                pid,
                snapshot,
                image,
                json,
                all,
                top,
            },
        ),
        Cmd::Diff {
            before,
            after,
            snapshot,
            image,
            json,
            all,
            top,
        } => mapagent::cmd::diff::run(
            &before,
            &after,
            &mapagent::cmd::diff::Args {
                snapshot,
                image,
                json,
                top,
                all,
            },
        ),
        Cmd::Pages {
            path,
            pid,
            snapshot,
            image,
            output,
        } => mapagent::cmd::pages::run(&path, pid, snapshot, &image, &output),
        Cmd::Shm { json, record } => mapagent::cmd::shm::run(json, record.as_deref()),
        Cmd::Core {
            core,
            exe,
            record,
            json,
            extract,
            output,
        } => mapagent::cmd::core::run(
            &core,
            &mapagent::cmd::core::Args {
                exe,
                record,
                json,
                extract,
                output,
            },
        ),
        Cmd::Mem {
            path,
            pid,
            json,
            svg,
        } => mapagent::cmd::mem::run(&path, pid, json, svg.as_deref()),
        Cmd::Watch {
            path,
            pid,
            json,
            perf,
            normalize,
            top,
        } => mapagent::cmd::watch::run(
            &path,
            &mapagent::cmd::watch::Args {
                pid,
                json,
                perf: perf.as_deref(),
                normalize,
                top,
            },
        ),
        Cmd::Check {
            max_dirty,
            output,
            json,
            cmd,
        } => mapagent::cmd::check::run(&mapagent::cmd::check::Args {
            limits: max_dirty,
            output,
            json,
            cmd,
        }),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("mapagent: error: {e}");
            std::process::exit(e.code);
        }
    }
}
