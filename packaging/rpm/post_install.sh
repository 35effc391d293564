# strata .rpm %post ($1: 1 = install, 2 = upgrade).
systemd-sysusers strata.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create strata.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	# Enabled (works without a running systemd too), never started: configure it first.
	systemctl enable strata.service >/dev/null 2>&1 || :
	cat <<'MSG'

strata is installed and its service is enabled, but NOT started: configure it first.
  1. Edit /etc/strata/strata.toml (settings) and /etc/strata/strata.env (secrets, 0600).
  2. Check:  sh -c 'set -a; . /etc/strata/strata.env; strata check'
  3. Start:  systemctl start strata      Logs: journalctl -u strata -f
See /usr/share/doc/strata/README.md (section "Install").

MSG
fi
