package agent

import "time"

// LastProvision is what state.json under p says of the last provision by
// hand: the source and settings it recorded (nil when none), and when
// `tlsdock revert` put the host back (zero when it did not since). A host
// without state has neither.
func LastProvision(p Paths) (rec *SourceRecord, revertedAt time.Time, err error) {
	st, err := (&Agent{o: Options{Paths: p}}).loadState()
	if err != nil || st == nil {
		return nil, time.Time{}, err
	}
	return st.Source, st.RevertedAt, nil
}

// provisionRecorded lets a provision whose command line names no source
// (neither --certs nor --generate) provision the host as the last
// provision by hand left it, exactly as `tlsdock run` would serve it: the
// recorded source when the config file sets none either, and each
// recorded setting of the served API (mode, host, san...) that no flag or
// file line sets. This is what the package's postinstall runs on an
// upgrade. A provision that names a source starts afresh from the file
// and the defaults.
func (m *merger) provisionRecorded(rc *RunConfig) {
	r := m.s.Recorded
	if r == nil {
		return
	}
	for _, key := range []string{"certs", "generate"} {
		if _, named := m.s.Flags[key]; named {
			return
		}
	}
	_, certsSet := m.origins["certs"]
	_, genSet := m.origins["generate"]
	if !certsSet && !genSet {
		m.recorded(rc, r)
	}
	m.recordedSettings(rc, r)
}
