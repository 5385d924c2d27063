package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// conffiles are the staged files dpkg must treat as the admin's: kept on
// upgrade and remove, asked about when changed, deleted only by purge.
var conffiles = map[string]bool{"/etc/bansd/bansd.toml": true}

const description = `ban daemon for Mailu on Docker
 bansd follows the logs of Mailu's containers through the Docker API, counts
 failed logins per address and per network and bans offenders in nftables,
 before Docker's NAT. bansctl is its command line.`

// writeDeb packages the staged tree with nfpm: it writes the ar/tar
// layout, md5sums, conffiles and the control file dpkg expects.
func writeDeb(r release, path string) error {
	var contents files.Contents
	err := filepath.WalkDir(r.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(r.Root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		dst := "/" + filepath.ToSlash(rel)
		c := &files.Content{Source: p, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: fi.Mode().Perm(), MTime: r.MTime, Owner: "root", Group: "root"}}
		if conffiles[dst] {
			c.Type = files.TypeConfig
		}
		contents = append(contents, c)
		return nil
	})
	if err != nil {
		return err
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        "bansd",
		Arch:        "amd64",
		Platform:    "linux",
		Version:     r.Version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "bansd maintainers <bansd@example.org>",
		Description: description,
		Homepage:    "https://github.com/bansd/bansd",
		License:     "MIT",
		MTime:       r.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(r.Scripts, "postinst"),
				PreRemove:   filepath.Join(r.Scripts, "prerm"),
				PostRemove:  filepath.Join(r.Scripts, "postrm"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
