package batch

import (
	"flag"
	"fmt"
	"strings"

	// The runners loupe batch offers, registered with Beam by name.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"
)

// Runners returns the Beam runners loupe batch takes by name.
func Runners() []string {
	return []string{"direct", "prism", "flink", "spark", "dataflow", "universal"}
}

// SplitBeamFlags separates the flags of args that fs does not define
// but Apache Beam does (its options are flags of the process's
// flag.CommandLine: --job_name, --environment_type, --project, ...):
// own are the arguments for fs, beamFlags Beam's as name=value. A flag
// neither knows stays in own, for fs to report.
func SplitBeamFlags(fs *flag.FlagSet, args []string) (own, beamFlags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			own = append(own, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil || flag.CommandLine.Lookup(name) == nil {
			own = append(own, a)
			if f != nil && !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				own = append(own, args[i])
			}
			continue
		}
		if !hasValue {
			if isBool(flag.CommandLine.Lookup(name)) {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			}
		}
		beamFlags = append(beamFlags, name+"="+value)
	}
	return own, beamFlags
}

// isBool says whether a flag takes no value.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setBeamFlags sets Beam's flags (name=value) on flag.CommandLine, where
// Beam reads them, and returns a function that puts back every flag it
// or the run changed (prism sets --endpoint to the server it starts).
func setBeamFlags(kvs []string) (restore func(), err error) {
	names := map[string]bool{"endpoint": true, "environment_type": true}
	for _, kv := range kvs {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	old := map[string]string{}
	for name := range names {
		if f := flag.CommandLine.Lookup(name); f != nil {
			old[name] = f.Value.String()
		}
	}
	restore = func() {
		for name, v := range old {
			flag.CommandLine.Set(name, v)
		}
	}
	for _, kv := range kvs {
		name, value, _ := strings.Cut(kv, "=")
		if flag.CommandLine.Lookup(name) == nil {
			restore()
			return nil, fmt.Errorf("--%s: not a flag of Apache Beam's runners", name)
		}
		if err := flag.CommandLine.Set(name, value); err != nil {
			restore()
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
	}
	return restore, nil
}
