package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/doctor"
)

func newDoctorCmd(g *globals) *cobra.Command {
	var cfgPath, dockerHost string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Audit this host: Docker, Mailu, the open-relay risk, the ban table, other firewalls",
		Long: `doctor checks what bansd cannot fix by itself and prints PASS, WARN or FAIL
with the fix for each. It talks to Docker and nftables directly, so it works
without bansd running; when bansd's socket answers it shows its status too.
Run it as root on the Docker host. Exit status 1 when any check FAILs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			host := dockerHost
			if host == "" {
				host = cfg.Docker.Host
			}
			if host == "" {
				host = os.Getenv("DOCKER_HOST")
			}
			socket := g.socket
			if !cmd.Flags().Changed("socket") && os.Getenv("BANSD_SOCKET") == "" {
				socket = cfg.Daemon.Socket
			}
			facts := doctor.Gather(cmd.Context(), doctor.Options{
				DockerHost: host, Project: cfg.Docker.Project,
				Table: cfg.Firewall.Table, Priority: cfg.Firewall.Priority, Socket: socket,
			})
			results := doctor.Check(facts)
			if g.json {
				if err := writeJSON(cmd.OutOrStdout(), struct {
					Results []doctor.Result `json:"results"`
					Facts   doctor.Facts    `json:"facts"`
				}{results, facts}); err != nil {
					return err
				}
			} else {
				printDoctor(cmd.OutOrStdout(), results)
			}
			if doctor.Failed(results) {
				return exitError{exitFailed}
			}
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "bansd's config file (table, priority, project, socket); default: the built-in config")
	c.Flags().StringVar(&dockerHost, "docker-host", "", "Docker engine address (default: $DOCKER_HOST, else the local socket)")
	return c
}

func printDoctor(w io.Writer, rs []doctor.Result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-4s  %-16s %s\n", r.Verdict, r.Check, clean(r.Message))
		if r.Fix != "" && r.Verdict != doctor.Pass {
			fmt.Fprintf(w, "      %-16s fix: %s\n", "", r.Fix)
		}
	}
}
