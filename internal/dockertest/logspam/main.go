// Command logspam prints numbered log lines as fast as it can, or at a given
// rate, for the Docker source's tests and benchmark. It is built static and
// copied into a test image.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 1000, "lines to print (per stream)")
	rate := flag.Int("rate", 0, "lines per second per stream (0: as fast as possible)")
	size := flag.Int("size", 0, "pad each line to at least this many bytes")
	streams := flag.String("streams", "out", "out, err or both (alternating)")
	sleep := flag.Duration("sleep", 0, "sleep this long after printing (keeps the container running)")
	mark := flag.String("mark", "", "while sleeping, print \"mark\" each time this file appears, and remove it (tests settle on it)")
	flag.Parse()

	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	var ws []*bufio.Writer
	var names []string
	switch *streams {
	case "out":
		ws, names = []*bufio.Writer{out}, []string{"out"}
	case "err":
		ws, names = []*bufio.Writer{errw}, []string{"err"}
	case "both":
		ws, names = []*bufio.Writer{out, errw}, []string{"out", "err"}
	default:
		fmt.Fprintln(os.Stderr, "logspam: -streams must be out, err or both")
		os.Exit(2)
	}
	flush := func() {
		for _, w := range ws {
			if err := w.Flush(); err != nil {
				os.Exit(1)
			}
		}
	}

	start := time.Now()
	line := make([]byte, 0, 256)
	for i := 0; i < *n; i++ {
		for k, w := range ws {
			line = append(line[:0], names[k]...)
			line = append(line, ' ')
			line = strconv.AppendInt(line, int64(i), 10)
			if pad := *size - len(line) - 1; pad > 0 {
				line = append(line, ' ')
				line = append(line, strings.Repeat("x", pad)...)
			}
			line = append(line, '\n')
			w.Write(line)
		}
		if *rate > 0 && (i+1)%100 == 0 {
			flush()
			if d := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(*rate))); d > 0 {
				time.Sleep(d)
			}
		}
	}
	flush()
	if *mark == "" {
		time.Sleep(*sleep)
		return
	}
	for end := time.Now().Add(*sleep); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if os.Remove(*mark) == nil {
			out.WriteString("mark\n")
			flush()
		}
	}
}
