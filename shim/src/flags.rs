//! The flags containerd passes, in Go's `flag` syntax: `-name value`,
//! `-name=value`, `--name value`, booleans bare; then one action word.

#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    pub action: Option<String>,
}

impl Flags {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                if f.action.is_some() {
                    return Err(format!("unexpected argument {a:?}"));
                }
                f.action = Some(a);
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            let flag_bool = |v: Option<String>| -> Result<bool, String> {
                match v.as_deref() {
                    None | Some("true") | Some("1") => Ok(true),
                    Some("false") | Some("0") => Ok(false),
                    Some(o) => Err(format!("-{name}: not a boolean: {o:?}")),
                }
            };
            match name {
                "debug" => f.debug = flag_bool(inline)?,
                "v" => f.version = flag_bool(inline)?,
                "info" => f.info = flag_bool(inline)?,
                "namespace" | "address" | "publish-binary" | "id" | "bundle" | "socket" => {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .ok_or_else(|| format!("flag -{name} needs a value"))?,
                    };
                    match name {
                        "namespace" => f.namespace = v,
                        "address" => f.address = v,
                        "publish-binary" => f.publish_binary = v,
                        "id" => f.id = v,
                        "bundle" => f.bundle = v,
                        _ => f.socket = v,
                    }
                }
                other => return Err(format!("flag provided but not defined: -{other}")),
            }
        }
        if f.namespace.is_empty() {
            if let Ok(ns) = std::env::var("NAMESPACE") {
                f.namespace = ns;
            }
        }
        Ok(f)
    }

    /// The arguments that make the same flags again, for the daemon.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "-namespace".to_string(),
            self.namespace.clone(),
            "-id".to_string(),
            self.id.clone(),
            "-address".to_string(),
            self.address.clone(),
        ];
        if !self.publish_binary.is_empty() {
            a.push("-publish-binary".into());
            a.push(self.publish_binary.clone());
        }
        if !self.socket.is_empty() {
            a.push("-socket".into());
            a.push(self.socket.clone());
        }
        if self.debug {
            a.push("-debug".into());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[&str]) -> Result<Flags, String> {
        Flags::parse(s.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags_and_action_parse() {
        let f = parse(&[
            "-namespace",
            "k8s.io",
            "-address=/run/c.sock",
            "--publish-binary",
            "/usr/bin/containerd",
            "-id",
            "abc",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.address, "/run/c.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "abc");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn unknown_flag_and_missing_value_are_errors() {
        assert!(parse(&["-bogus"]).is_err());
        assert!(parse(&["-id"]).is_err());
        assert!(parse(&["start", "delete"]).is_err());
    }
}
