package record

import "strconv"

// safetyRegions are the names of the 25 safety regions (veiligheidsregio's), by their codes
// VR01 to VR25, in the order of the national numbering.
var safetyRegions = [25]string{
	"Groningen", "Fryslân", "Drenthe", "IJsselland", "Twente",
	"Noord- en Oost-Gelderland", "Gelderland-Midden", "Gelderland-Zuid", "Utrecht", "Noord-Holland Noord",
	"Zaanstreek-Waterland", "Kennemerland", "Amsterdam-Amstelland", "Gooi en Vechtstreek", "Haaglanden",
	"Hollands Midden", "Rotterdam-Rijnmond", "Zuid-Holland Zuid", "Zeeland", "Midden- en West-Brabant",
	"Brabant-Noord", "Brabant-Zuidoost", "Limburg-Noord", "Zuid-Limburg", "Flevoland",
}

// RegionName is the name of the safety region code stands for (Utrecht for VR09); "" for NL, the
// whole country, and for what is no region code.
func RegionName(code string) string {
	if code == "NL" || !regionCode.MatchString(code) {
		return ""
	}
	n, _ := strconv.Atoi(code[2:])
	return safetyRegions[n-1]
}
