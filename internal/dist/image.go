package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The image is written as `docker save` does since Engine 25: an OCI
// image layout (index.json, blobs/sha256/...) that also carries the
// older manifest.json, so both old and new engines `docker load` it and
// no dockerd is needed to build it. One layer: the two static binaries,
// as configs/Dockerfile builds FROM scratch.

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	imageBinDir   = "usr/local/bin/"
)

// imageTag is the version as a Docker tag: tags allow no "+", so build
// metadata is joined with "-" (0.0.0-dev+abc1234 -> 0.0.0-dev-abc1234).
func imageTag(v string) string { return strings.ReplaceAll(v, "+", "-") }

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type imageConfig struct {
	Entrypoint []string            `json:"Entrypoint"`
	Env        []string            `json:"Env"`
	Labels     map[string]string   `json:"Labels"`
	Volumes    map[string]struct{} `json:"Volumes"`
	StopSignal string              `json:"StopSignal"`
}

// imageLabels are the OCI annotation keys docker shows in `inspect`.
func imageLabels(r release) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "bansd",
		"org.opencontainers.image.description": "ban daemon for Mailu on Docker",
		"org.opencontainers.image.version":     r.Version,
		"org.opencontainers.image.revision":    r.Commit,
		"org.opencontainers.image.created":     r.MTime.Format(time.RFC3339),
		"org.opencontainers.image.source":      "https://github.com/bansd/bansd",
		"org.opencontainers.image.licenses":    "MIT",
	}
}

func writeImage(r release, path string) error {
	layer, err := imageLayer(r)
	if err != nil {
		return err
	}
	layerDesc := blob(mediaLayer, layer)
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      r.MTime.Format(time.RFC3339),
		"config": imageConfig{
			Entrypoint: []string{"/" + imageBinDir + "bansd"},
			Env:        []string{"PATH=/usr/local/bin"},
			Labels:     imageLabels(r),
			Volumes:    map[string]struct{}{"/var/lib/bansd": {}},
			StopSignal: "SIGTERM",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
		"history": []map[string]string{{"created": r.MTime.Format(time.RFC3339), "created_by": "bansd internal/dist " + r.Version}},
	})
	if err != nil {
		return err
	}
	cfgDesc := blob(mediaConfig, cfg)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        cfgDesc,
		"layers":        []descriptor{layerDesc},
		"annotations":   imageLabels(r),
	})
	if err != nil {
		return err
	}
	tag := imageTag(r.Version)
	manDesc := blob(mediaManifest, manifest)
	manDesc.Annotations = map[string]string{
		"io.containerd.image.name":          "docker.io/library/bansd:" + tag,
		"org.opencontainers.image.ref.name": tag,
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{manDesc}})
	if err != nil {
		return err
	}
	legacy, err := json.Marshal([]map[string]any{{
		"Config":   blobPath(cfgDesc),
		"RepoTags": []string{"bansd:" + tag},
		"Layers":   []string{blobPath(layerDesc)},
	}})
	if err != nil {
		return err
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"manifest.json", legacy},
		{blobPath(layerDesc), layer},
		{blobPath(cfgDesc), cfg},
		{blobPath(manDesc), manifest},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := addDir(tw, d, r.MTime); err != nil {
			f.Close()
			return err
		}
	}
	for _, e := range entries {
		if err := addFile(tw, e.name, e.data, 0o644, r.MTime); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// imageLayer is the uncompressed layer tar: /usr/local/bin/{bansd,bansctl}.
func imageLayer(r release) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/", "usr/local/", imageBinDir} {
		if err := addDir(tw, d, r.MTime); err != nil {
			return nil, err
		}
	}
	for _, b := range []struct{ name, staged string }{{"bansctl", "usr/bin/bansctl"}, {"bansd", "usr/sbin/bansd"}} {
		data, err := os.ReadFile(filepath.Join(r.Root, b.staged))
		if err != nil {
			return nil, err
		}
		if err := addFile(tw, imageBinDir+b.name, data, 0o755, r.MTime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func blob(media string, data []byte) descriptor {
	sum := sha256.Sum256(data)
	return descriptor{MediaType: media, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func blobPath(d descriptor) string { return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:") }
