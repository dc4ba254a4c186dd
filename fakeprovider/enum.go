package fakeprovider

import "strconv"

// enumName names value v of an enumeration: names[v], or typ(v) when v has
// no name.
func enumName(names []string, v int, typ string) string {
	if v >= 0 && v < len(names) && names[v] != "" {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(v) + ")"
}
