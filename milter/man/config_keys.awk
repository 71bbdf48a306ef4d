# The KEYS section of mta-sts-milter.toml(5), in scdoc, from the output of
# `mta-sts-milter --print-config`: "[section]" lines, then
# "key = value  # description" lines. So the page lists exactly the keys the
# binary accepts, with its defaults (tests/integration/man_pages.sh checks it).
function scdoc_escape(text) {
  gsub(/\\/, "\\\\", text)
  gsub(/\*/, "\\*", text)
  gsub(/_/, "\\_", text)
  return text
}
/^\[[a-z_]+\]$/ {
  section = substr($0, 2, length($0) - 2)
  printf "## [%s]\n\n", section
  next
}
/^[a-z_]+ = / {
  split_at = index($0, "  # ")
  setting = split_at ? substr($0, 1, split_at - 1) : $0
  help = split_at ? substr($0, split_at + 4) : ""
  key = substr(setting, 1, index(setting, " = ") - 1)
  value = substr(setting, index(setting, " = ") + 3)
  printf "*%s.%s* = %s\n", scdoc_escape(section), scdoc_escape(key), scdoc_escape(value)
  if (help != "") printf "\t%s\n", scdoc_escape(help)
  printf "\n"
}
