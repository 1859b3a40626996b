# camd@.service is made from camd.service by this sed script (install.sh and the tests run it),
# so the two units cannot drift apart: only these lines differ. install.sh checks that each matched.
1c\
# camd@NAME: one more camera, config /etc/camd/NAME.toml, files in /var/lib/camd/NAME.\
# Enable one per camera: sudo systemctl enable --now camd@garden (see "Several cameras").
s|^Description=camd camera daemon (|Description=camd camera daemon for %i (|
s|^\(ExecStart=.* --config /etc/camd/\)camd\.toml$|\1%i.toml|
s|^SyslogIdentifier=camd$|SyslogIdentifier=camd@%i|
s|^StateDirectory=camd$|StateDirectory=camd/%i|
