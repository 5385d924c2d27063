package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// writeTarball packs the staged tree under bansd-<version>-linux-amd64/,
// plus the compose drop-in with its image pinned to this version.
func writeTarball(r release, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	top := strings.TrimSuffix(tarName(r.Version), ".tar.gz") + "/"
	if err := addTree(tw, r.Root, top, r.MTime); err != nil {
		f.Close()
		return err
	}
	compose, err := os.ReadFile(r.Compose)
	if err != nil {
		f.Close()
		return err
	}
	if err := addFile(tw, top+"compose.yml", pinCompose(compose, imageTag(r.Version)), 0o644, r.MTime); err != nil {
		f.Close()
		return err
	}
	for _, c := range []io.Closer{tw, gz, f} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	return nil
}

// pinCompose makes the shipped drop-in use this release's image tag
// instead of the source tree's default.
func pinCompose(data []byte, tag string) []byte {
	return []byte(strings.ReplaceAll(string(data), "${BANSD_VERSION:-latest}", "${BANSD_VERSION:-"+tag+"}"))
}

// addTree adds every file of root under prefix, in name order, with
// directories, owned by root and stamped mtime.
func addTree(tw *tar.Writer, root, prefix string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	if prefix != "" {
		if err := addDir(tw, prefix, mtime); err != nil {
			return err
		}
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		name := prefix + filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			err = addDir(tw, name+"/", mtime)
		case fi.Mode().IsRegular():
			var data []byte
			if data, err = os.ReadFile(p); err == nil {
				err = addFile(tw, name, data, int64(fi.Mode().Perm()), mtime)
			}
		default:
			err = fmt.Errorf("%s: only files and directories are packed", p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func addDir(tw *tar.Writer, name string, mtime time.Time) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX})
}

func addFile(tw *tar.Writer, name string, data []byte, mode int64, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// writeSums writes SHA256SUMS in sha256sum's format, so
// `sha256sum -c SHA256SUMS` checks a download.
func writeSums(dir string, names []string) error {
	var b strings.Builder
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), n)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
