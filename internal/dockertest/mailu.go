package dockertest

import "testing"

// MailuLike makes what discovery takes for Mailu: a compose project
// "mailu" whose network mailu_default has subnet and gateway, with services
// front and admin (busybox, SUBNET set) in containers mailu-front-1 and
// mailu-admin-1, each running its script from scripts or sleeping.
func (e *Engine) MailuLike(t testing.TB, subnet, gateway string, scripts map[string]string) {
	t.Helper()
	img := e.ImportBusybox(t)
	e.Docker(t, "network", "create", "--subnet", subnet, "--gateway", gateway,
		"--label", "com.docker.compose.project=mailu", "mailu_default")
	for _, svc := range []string{"front", "admin"} {
		script, ok := scripts[svc]
		if !ok {
			script = "exec sleep 600"
		}
		e.Docker(t, "run", "-d", "--name", "mailu-"+svc+"-1", "--network", "mailu_default",
			"-l", "com.docker.compose.project=mailu", "-l", "com.docker.compose.service="+svc,
			"-e", "SUBNET="+subnet, img, "sh", "-c", script)
	}
}
