//go:build !genman

package main

import "flag"

// manFlag: the daemon as shipped has no --gen-man (see man.go).
func manFlag(*flag.FlagSet) func() (bool, error) {
	return func() (bool, error) { return false, nil }
}
