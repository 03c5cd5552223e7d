//! The `berth` command line: argument parsing and output formatting only;
//! everything else is the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth::{logging, CreateOptions, Runtime};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "berth", version, about = "berth: an OCI container runtime")]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = berth::DEFAULT_ROOT)]
    root: PathBuf,
    /// Write log messages to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility: berth detects rootless operation.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
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
    container_id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start the process of a created container.
    Start { container_id: String },
    /// Create, start and wait for a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Do not delete the container after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { container_id: String },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to a container's process.
    Kill {
        #[arg(short, long)]
        all: bool,
        container_id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        #[arg(short, long)]
        force: bool,
        container_id: String,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime-spec features document.
    Features,
}

fn main() -> ExitCode {
    // The container's init runs from the memfd copy with this one argument;
    // it never goes through clap.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new("init")) && args.next().is_none() {
        berth::init::main();
    }
    let cli = Cli::parse();
    logging::init(
        cli.log.clone(),
        match cli.log_format {
            LogFormat::Text => logging::Format::Text,
            LogFormat::Json => logging::Format::Json,
        },
        cli.debug,
    );
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = error_chain(&e);
            logging::error(&msg);
            eprintln!("berth: {msg}");
            ExitCode::from(1)
        }
    }
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
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    if cli.systemd_cgroup {
        // Refused before anything is created.
        let systemd = std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd");
        if !systemd {
            bail!("--systemd-cgroup: this host is not running systemd (PID 1 is not systemd); use the cgroupfs driver");
        }
    }
    // `spec --rootless` uses the global flag of the same name, as in runc.
    let rootless = cli.rootless.as_deref().is_some_and(|v| v == "true");
    let rt = Runtime::new(&cli.root, cli.systemd_cgroup);
    match cli.cmd {
        Cmd::Create(a) => {
            rt.create(&create_options(&a))?;
        }
        Cmd::Start { container_id } => rt.start(&container_id)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => {
            let _ = keep;
            let code = rt.run(&create_options(&create), detach)?;
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
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = berth::features::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
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

/// Accepts `TERM`, `SIGTERM`, `sigterm`, `15` like runc.
fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
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
