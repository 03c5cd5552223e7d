//! The `berth` command line: argument parsing and output formatting only;
//! everything else is the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth::{logging, CreateOptions, Runtime};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth",
    version = VERSION,
    disable_version_flag = true,
    about = "berth: an OCI container runtime"
)]
struct Cli {
    /// Print the version, the commit, the runtime-spec version and the
    /// seccomp compiler.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version, global = false)]
    version: Option<bool>,
    /// Directory for container state (default: /run/berth for root,
    /// $XDG_RUNTIME_DIR/berth for anyone else).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Write log messages to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text (logrus-style lines) or json (what containerd reads).
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug lines (to --log, else stderr), with create's phase timings.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// runc's flag; berth tells rootless operation from its euid. With
    /// `spec`: write a config for an unprivileged user.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// runc's --criu (path of the criu binary); checkpoint is not implemented.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container's init pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// A name for the new container, unique under --root.
    container_id: String,
}

#[derive(Args)]
struct ExecArgs {
    /// A runtime-spec process JSON file; replaces ARGS and the flags below.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Allocate a pseudo-terminal for the process.
    #[arg(short, long)]
    tty: bool,
    /// Unix socket to send the pty master to (with --tty).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Return once the process runs; do not wait for it.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Working directory of the process (default: the container's).
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable, KEY=VALUE (repeatable).
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    user: Option<String>,
    /// An additional group id of the process (repeatable).
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability to the process's sets, e.g. CAP_NET_ADMIN (repeatable).
    #[arg(short, long)]
    cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass N extra fds (3..3+N) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Run even in a paused container (the process starts frozen).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// AppArmor profile for the process (default: the container's).
    #[arg(long)]
    apparmor: Option<String>,
    /// SELinux label for the process (default: the container's).
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// Run the process in an existing sub-cgroup of the container's cgroup:
    /// PATH, or CONTROLLER[,CONTROLLER]:PATH on cgroup v1 (repeatable).
    #[arg(long = "cgroup", value_name = "[CONTROLLERS:]PATH")]
    cgroup: Vec<String>,
    /// The container to run the process in.
    container_id: String,
    /// The command and its arguments (or none, with --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Args)]
struct UpdateArgs {
    /// runtime-spec linux.resources JSON from a file, or - for stdin.
    #[arg(short, long)]
    resources: Option<String>,
    /// Memory limit (bytes, or with k/m/g), -1 for unlimited.
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory plus swap limit, -1 for unlimited.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit, -1 for unlimited.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// CPU CFS quota in microseconds per period, -1 for unlimited.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares", alias = "cpu-share")]
    cpu_shares: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per realtime period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use, e.g. 0-3,7.
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use, e.g. 0-1.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes, -1 for unlimited.
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (linux.intelRdt.l3CacheSchema).
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (linux.intelRdt.memBwSchema).
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
    /// Block I/O weight, 10-1000.
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// The container to update.
    container_id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start the process of a created container.
    Start {
        /// The container to start.
        container_id: String,
    },
    /// Create, start and wait for a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container runs; do not wait for it.
        #[arg(short, long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
        /// Do not make berth a child subreaper while it waits.
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON.
    State {
        /// The container.
        container_id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// Output format: table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the container ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to a container's process.
    Kill {
        /// Signal every process of the container, not only its init.
        #[arg(short, long)]
        all: bool,
        /// The container.
        container_id: String,
        /// The signal: a name (TERM, SIGKILL) or a number; 0 checks the
        /// container exists.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill a running container first; succeed for one that does not
        /// exist (and remove what a killed create left).
        #[arg(short, long)]
        force: bool,
        /// The container.
        container_id: String,
    },
    /// Run a process in a running container.
    /// Examples: berth exec ID ps; berth exec -t --console-socket S ID sh;
    /// berth exec --process p.json ID (a runtime-spec process object).
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause {
        /// The container.
        container_id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// The container.
        container_id: String,
    },
    /// List the processes of a container.
    Ps {
        /// Output format: table (ps(1)'s) or json (the pids).
        #[arg(short, long, default_value = "table")]
        format: String,
        /// The container.
        container_id: String,
        /// Options passed to ps(1) (default -ef), e.g. `-o pid,comm`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print resource usage and OOM events.
    Events {
        /// Print stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats, e.g. 5s or 500ms.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// The container.
        container_id: String,
    },
    /// Change a running container's resource limits.
    ///
    /// Examples: berth update --memory 64m --pids-limit 100 ID;
    /// berth update --memory -1 ID (unlimited);
    /// echo '{"memory": {"limit": 67108864}, "cpu": {"quota": 50000}}' | berth update --resources - ID
    Update(UpdateArgs),
    /// Write a default config.json.
    Spec {
        /// The bundle directory to write config.json in.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime-spec features document.
    Features,
    /// Check what this host gives a container runtime and what berth will
    /// therefore do; exits 1 if something berth needs is missing.
    Check {
        /// Output format: text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages, berth(8) and one per command, to a directory.
    Man {
        /// Where to write them (e.g. /usr/local/share/man/man8).
        dir: PathBuf,
    },
}

/// runc's layout: the version line, then `key: value` lines.
const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("BERTH_COMMIT"),
    "\nspec: ",
    "1.2.1",
    "\nseccomp: berth-seccomp (pure Rust, no libseccomp)"
);

fn main() -> ExitCode {
    // The container's init runs from the memfd copy with this one argument;
    // it never goes through clap.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new("init")) && args.next().is_none() {
        berth::init::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    // runc's status for an exec that could not start its process.
    let failed = if matches!(cli.cmd, Cmd::Exec(_)) {
        255
    } else {
        1
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, with runc's phrases where clients look for them,
            // in the log (containerd reads the last "error" there) and on
            // stderr (CRI-O, conmon and go-runc's kill/delete read that).
            let msg = berth::error::one_line(&berth::error::for_clients(&error_chain(&e)));
            logging::error(&msg);
            let _ = writeln!(std::io::stderr(), "berth: error: {msg}");
            ExitCode::from(failed)
        }
    }
}

/// berth.8 and berth-COMMAND.8, from the CLI definition itself.
fn write_man_pages(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let cmd = Cli::command().name("berth");
    let write = |name: &str, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.8"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c)
            .section("8")
            .render(&mut out)
            .with_context(|| format!("rendering {name}.8"))?;
        std::fs::write(&path, out).with_context(|| format!("{}", path.display()))
    };
    write("berth", cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("berth-{}", sub.get_name());
        // A one-shot command: the name may live as long as the process.
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        write(&name, sub.clone().name(leaked))?;
    }
    Ok(())
}

/// Help and version go to stdout as clap writes them; a usage error is one
/// line on stderr and exit status 1, like every other berth error.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // The message is the first paragraph (clap lists missing arguments on
    // the lines under it); tips and usage follow a blank line.
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = para.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    eprintln!("berth: error: {msg} (see berth --help)");
    std::process::exit(1);
}

/// The error and its causes on one line, skipping a cause whose text the
/// message above it already ends with.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.ends_with(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.container_id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        // Socket activation: only when the fds are really meant for us.
        listen_fds: match (std::env::var("LISTEN_FDS"), std::env::var("LISTEN_PID")) {
            (Ok(n), Ok(pid)) if pid == std::process::id().to_string() => n.parse().unwrap_or(0),
            _ => 0,
        },
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        no_subreaper: false,
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    // Every command opens (creates) the --log file, as runc does; one that
    // cannot be opened is the command's error.
    logging::init(
        cli.log.clone(),
        match cli.log_format {
            LogFormat::Text => logging::Format::Text,
            LogFormat::Json => logging::Format::Json,
        },
        cli.debug,
    )?;
    // `spec --rootless` uses the global flag of the same name, as in runc.
    let rootless = cli.rootless.as_deref().is_some_and(|v| v == "true");
    let root = cli
        .root
        .clone()
        .unwrap_or_else(berth::rootless::default_root);
    let rt = Runtime::new(root, cli.systemd_cgroup);
    match cli.cmd {
        Cmd::Create(a) => {
            rt.create(&create_options(&a))?;
        }
        Cmd::Start { container_id } => rt.start(&container_id)?,
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => {
            let mut o = create_options(&create);
            o.no_subreaper = no_subreaper;
            let code = rt.run_keep(&o, detach, keep)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Cmd::State { container_id } => {
            let st = rt.state(&container_id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::List { format, quiet } => list(&rt, &format, quiet)?,
        Cmd::Kill {
            all,
            container_id,
            signal,
        } => {
            let sig = parse_signal(&signal)?;
            rt.kill(&container_id, sig, all)?;
        }
        Cmd::Delete {
            force,
            container_id,
        } => rt.delete(&container_id, force)?,
        Cmd::Exec(a) => {
            let process = exec_process(&rt, &a)?;
            let code = rt.exec(&berth::ExecOptions {
                id: a.container_id.clone(),
                process,
                console_socket: a.console_socket.clone(),
                pid_file: a.pid_file.clone(),
                detach: a.detach,
                preserve_fds: a.preserve_fds,
                ignore_paused: a.ignore_paused,
                cgroup: a
                    .cgroup
                    .iter()
                    .map(|c| c.parse().map_err(anyhow::Error::msg))
                    .collect::<Result<_>>()?,
            })?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Cmd::Pause { container_id } => rt.pause(&container_id)?,
        Cmd::Resume { container_id } => rt.resume(&container_id)?,
        Cmd::Ps {
            format,
            container_id,
            ps_args,
        } => ps(&rt, &format, &container_id, &ps_args)?,
        Cmd::Events {
            stats,
            interval,
            container_id,
        } => events(&rt, stats, &interval, &container_id)?,
        Cmd::Update(a) => {
            let r = update_resources(&a)?;
            rt.update(&a.container_id, &r)?;
        }
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = berth::features::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Cmd::Check { format } => {
            let items = berth::check::run();
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&items)?),
                "text" => print!("{}", berth::check::render(&items)),
                other => bail!("invalid format option {other:?}: use text or json"),
            }
            return Ok(if berth::check::fatal(&items) { 1 } else { 0 });
        }
        Cmd::Completion { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut out);
            // A reader that stops early (| head) is no error worth a panic.
            let _ = std::io::stdout().write_all(&out);
        }
        Cmd::Man { dir } => write_man_pages(&dir)?,
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth::features::document())?
            );
        }
    }
    Ok(0)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &all {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        "json" => writeln!(out, "{}", serde_json::to_string(&all)?)?,
        "table" => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        s.owner.clone(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for r in std::iter::once(&head).chain(rows.iter()) {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .enumerate()
                    .map(|(i, (c, w))| {
                        if i == 5 {
                            c.clone()
                        } else {
                            format!("{c:<w$}   ")
                        }
                    })
                    .collect();
                writeln!(out, "{}", line.concat())?;
            }
        }
        other => bail!("invalid format option {other:?}: use table or json"),
    }
    Ok(())
}

/// Accepts `TERM`, `SIGTERM`, `sigterm`, `15` like runc, and 0 (no signal:
/// only checks that the container's process exists).
fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                let off: i32 = rest
                    .parse()
                    .with_context(|| format!("invalid signal {s:?}"))?;
                return Ok(libc::SIGRTMIN() + off);
            }
            bail!("unknown signal {s:?}")
        }
    };
    Ok(n)
}

fn ps(rt: &Runtime, format: &str, id: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        // runc prints Go's nil slice, `null`, when there is no process.
        "json" if pids.is_empty() => println!("null"),
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        other => bail!("invalid format option {other:?}: use table or json"),
    }
    Ok(())
}

fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => bail!("invalid interval {s:?}"),
    };
    if secs <= 0.0 {
        bail!("invalid interval {s:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// One line of `events`, its keys in runc's order: `type`, `id`, `data`.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<berth_cgroups::stats::Stats>,
}

/// runc's `events`: `{"type":"stats","id":..,"data":..}` objects, and
/// `{"type":"oom","id":..}` when the kernel OOM-kills in the container.
fn events(rt: &Runtime, once: bool, interval: &str, id: &str) -> Result<()> {
    let emit = |kind: &str, data: Option<berth_cgroups::stats::Stats>| -> Result<()> {
        let line = serde_json::to_string(&Event { kind, id, data })?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    if once {
        return emit("stats", Some(rt.stats(id)?));
    }
    let every = parse_duration(interval)?;
    let mut oom = rt.oom_watcher(id)?;
    loop {
        let deadline = std::time::Instant::now() + every;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if oom.wait(Some(left))? {
                emit("oom", None)?;
            }
            if oom.cgroup_removed() {
                return Ok(());
            }
        }
        match rt.stats(id) {
            Ok(s) => emit("stats", Some(s))?,
            Err(_) => return Ok(()),
        }
    }
}

/// Bytes with an optional k/m/g suffix, as runc's flags take them; -1 for
/// unlimited.
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    Ok(if n == -1 { -1 } else { n * mult })
}

fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    let mut v: serde_json::Value = match a.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            serde_json::from_str(&s).context("--resources: invalid JSON on stdin")?
        }
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("--resources {path}"))?,
        )
        .with_context(|| format!("--resources {path}: invalid JSON"))?,
        None => serde_json::json!({}),
    };
    let set = |v: &mut serde_json::Value, section: &str, key: &str, val: serde_json::Value| {
        if !v[section].is_object() {
            v[section] = serde_json::json!({});
        }
        v[section][key] = val;
    };
    if let Some(m) = &a.memory {
        set(&mut v, "memory", "limit", parse_bytes(m)?.into());
    }
    if let Some(m) = &a.memory_swap {
        set(&mut v, "memory", "swap", parse_bytes(m)?.into());
    }
    if let Some(m) = &a.memory_reservation {
        set(&mut v, "memory", "reservation", parse_bytes(m)?.into());
    }
    if let Some(q) = a.cpu_quota {
        set(&mut v, "cpu", "quota", q.into());
    }
    if let Some(p) = a.cpu_period {
        set(&mut v, "cpu", "period", p.into());
    }
    if let Some(p) = a.cpu_shares {
        set(&mut v, "cpu", "shares", p.into());
    }
    if let Some(p) = a.cpu_rt_period {
        set(&mut v, "cpu", "realtimePeriod", p.into());
    }
    if let Some(r) = a.cpu_rt_runtime {
        set(&mut v, "cpu", "realtimeRuntime", r.into());
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        let flag = if a.l3_cache_schema.is_some() {
            "--l3-cache-schema"
        } else {
            "--mem-bw-schema"
        };
        if !std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
            bail!(
                "{flag}: Intel RDT is not available on this host (no resctrl at /sys/fs/resctrl)"
            );
        }
        bail!("{flag}: berth does not support linux.intelRdt");
    }
    if let Some(c) = &a.cpuset_cpus {
        set(&mut v, "cpu", "cpus", c.clone().into());
    }
    if let Some(c) = &a.cpuset_mems {
        set(&mut v, "cpu", "mems", c.clone().into());
    }
    if let Some(p) = a.pids_limit {
        set(&mut v, "pids", "limit", p.into());
    }
    if let Some(w) = a.blkio_weight {
        set(&mut v, "blockIO", "weight", w.into());
    }
    let de = serde_json::to_string(&v)?;
    let jd = &mut serde_json::Deserializer::from_str(&de);
    serde_path_to_error::deserialize(jd)
        .map_err(|e| anyhow::anyhow!("--resources: invalid field {}: {}", e.path(), e.inner()))
}

/// The process for `exec`: the --process file, or the container's own
/// process with the command line's changes, as runc builds it.
fn exec_process(rt: &Runtime, a: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let mut v: serde_json::Value = serde_json::from_slice(&data)
            .with_context(|| format!("--process {}: invalid JSON", path.display()))?;
        // runc: a process without `user` runs as uid 0, gid 0.
        if let Some(o) = v.as_object_mut() {
            o.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_path_to_error::deserialize(v).map_err(|e| {
            anyhow::anyhow!(
                "--process {}: invalid field {}: {}",
                path.display(),
                e.path(),
                e.inner()
            )
        });
    }
    if a.args.is_empty() {
        bail!("exec: no command given (ARGS or --process)");
    }
    let saved = rt.store.load(&a.container_id)?;
    let mut p = saved.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let id = |s: &str, what: &str| -> Result<u32> {
            let n = s
                .parse::<u32>()
                .with_context(|| format!("--user {u:?}: {what} {s:?} is not a number"))?;
            if n > berth::process::MAX_ID {
                bail!(
                    "--user {u:?}: {what} {n} is out of range (at most {})",
                    berth::process::MAX_ID
                );
            }
            Ok(n)
        };
        let (uid, gid) = match u.split_once(':') {
            Some((us, g)) => (id(us, "uid")?, Some(id(g, "gid")?)),
            None => (id(u, "uid")?, None),
        };
        let user = p.user_mut();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: Option<oci_spec::runtime::Capabilities>| -> Result<oci_spec::runtime::Capabilities> {
            let mut set = set.unwrap_or_default();
            for c in &a.cap {
                let cap: oci_spec::runtime::Capability = serde_json::from_value(serde_json::json!(c))
                    .with_context(|| format!("--cap {c}: unknown capability"))?;
                set.insert(cap);
            }
            Ok(set)
        };
        caps.set_bounding(Some(add(caps.bounding().clone())?));
        caps.set_effective(Some(add(caps.effective().clone())?));
        caps.set_permitted(Some(add(caps.permitted().clone())?));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_flag_and_argument_of_every_command_is_described() {
        use clap::CommandFactory;
        let cmd = super::Cli::command();
        let mut missing = Vec::new();
        for sub in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            for a in sub.get_arguments() {
                if a.is_hide_set() || a.get_id() == "help" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{} {}", sub.get_name(), a.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }

    #[test]
    fn version_names_the_spec_version_features_reports() {
        assert!(super::VERSION.contains(&format!("\nspec: {}\n", berth::features::OCI_VERSION_MAX)));
    }
}
