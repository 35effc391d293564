# strata .rpm %postun ($1: 0 = erase, 1 = upgrade; runs from the *old* package after the new
# one is in place). On upgrade: restart strata if it is running (try-restart). On erase,
# rpm keeps a modified /etc/strata/strata.toml or strata.env as *.rpmsave; the data in
# PostgreSQL, MongoDB and S3 is never touched, nor the strata user.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart strata.service >/dev/null 2>&1 || :
	fi
fi
