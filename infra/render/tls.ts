// openssl scripts (POSIX sh) run on the deploying machine by local.Command: a site CA made once,
// and a server certificate for the site's names signed by it. Both print PEM on stdout, which
// Pulumi keeps as a secret. Pure text here; pemBlocks splits the output back.

export function renderCaScript(site: string, days = 3650): string {
  return `set -eu
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days ${days} \\
  -subj "/O=pi-im/CN=pi-im ${site.replace(/[^\w .-]/g, "")} CA" \\
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \\
  -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
cat "$d/ca.pem" "$d/ca.key"
`;
}

export function sanList(names: string[]): string {
  const uniq = [...new Set(names)];
  return uniq.map((n) => (/^[\d.]+$/.test(n) || n.includes(":") ? `IP:${n}` : `DNS:${n}`)).join(",");
}

/** Reads the CA (cert + key PEM) on stdin; prints leaf cert, CA cert, leaf key. */
export function renderLeafScript(commonName: string, names: string[], days: number): string {
  return `set -eu
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cat >"$d/ca.all"
awk '/BEGIN CERTIFICATE/,/END CERTIFICATE/' "$d/ca.all" >"$d/ca.pem"
awk '/BEGIN .*PRIVATE KEY/,/END .*PRIVATE KEY/' "$d/ca.all" >"$d/ca.key"
printf '%s\\n' "subjectAltName=${sanList(names)}" "basicConstraints=critical,CA:FALSE" \\
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \\
  -subj "/O=pi-im/CN=${commonName}" -keyout "$d/leaf.key" -out "$d/leaf.csr" 2>/dev/null
openssl x509 -req -sha256 -days ${days} -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \\
  -set_serial "0x$(openssl rand -hex 16)" -extfile "$d/ext" -out "$d/leaf.pem" 2>/dev/null
cat "$d/leaf.pem" "$d/ca.pem" "$d/leaf.key"
`;
}

export interface PemBlocks {
  certs: string[];
  key?: string;
}

export function pemBlocks(text: string): PemBlocks {
  const blocks = text.match(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g) ?? [];
  return {
    certs: blocks.filter((b) => b.startsWith("-----BEGIN CERTIFICATE")).map((b) => `${b}\n`),
    key: blocks.find((b) => /PRIVATE KEY-----$/.test(b.split("\n")[0] ?? "")),
  };
}
