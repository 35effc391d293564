# strata .rpm %pre ($1: 1 = install, 2 = upgrade).
# Create the strata user and group now, before the files owned by group strata are laid
# down; the same line as /usr/lib/sysusers.d/strata.conf (systemd-sysusers reads it from stdin).
if command -v systemd-sysusers >/dev/null 2>&1; then
	echo 'u strata - "strata data tier" /var/lib/strata /usr/sbin/nologin' \
		| systemd-sysusers --replace=/usr/lib/sysusers.d/strata.conf - || :
fi
