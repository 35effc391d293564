# strata .rpm %preun ($1: 0 = erase, 1 = upgrade). On erase: stop and disable strata.
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable strata.service >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl stop strata.service >/dev/null 2>&1 || :
	fi
fi
