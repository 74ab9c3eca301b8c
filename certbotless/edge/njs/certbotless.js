// certbotless's njs functions (nginx's JavaScript module), for what nginx's configuration
// language cannot say. Each is read through js_set; the route's own values come in variables
// its location sets. Written for njs's own engine (no BigInt, ES5 syntax and a few ES6 forms).

var crypto = require('crypto');
var fs = require('fs');

// Traefik's replacePathRegex: Go's regexp.ReplaceAllString(path, replacement) on the path as
// the client wrote it (escaped, without the query). In: $certbotless_request_path,
// $certbotless_path_regex (PCRE), $certbotless_path_replacement (Go's template with names
// turned into numbers: `$$` a dollar, `${N}` group N). Out: "" when the regex does not match;
// "!400" when the new path is one Go's cleaning changes, "!500" when it holds a `%` that
// starts no escape (Traefik's answers); else the new path, as written (a `/` put first when it
// has none).
function replacedPath(r) {
    var path = r.variables.certbotless_request_path;
    var regex = new RegExp(r.variables.certbotless_path_regex, 'g');
    regex.lastIndex = 0;
    if (!regex.test(path)) {
        return '';
    }
    var replaced = goReplaceAll(regex, path, r.variables.certbotless_path_replacement);
    if (replaced.charAt(0) !== '/') {
        replaced = '/' + replaced;  // as nginx asks the service: a path starts with `/`
    }
    if (/%(?![0-9A-Fa-f]{2})/.test(replaced)) {
        return '!500';
    }
    // Only `.` and `/` matter to the cleaning: the rest stays escaped.
    var decoded = replaced.replace(/%2[eE]/g, '.').replace(/%2[fF]/g, '/');
    if (/\/\/|(?:^|\/)\.\.?(?:\/|$)/.test(decoded)) {
        return '!400';
    }
    return replaced;
}

// Go's replaceAll loop: an empty match right after the previous match is not replaced, and
// the search moves on at least one character.
function goReplaceAll(regex, text, template) {
    var out = '';
    var lastEnd = 0;
    var searchAt = 0;
    while (searchAt <= text.length) {
        regex.lastIndex = searchAt;
        var match = regex.exec(text);
        if (match === null) {
            break;
        }
        var start = match.index;
        var end = start + match[0].length;
        out += text.slice(lastEnd, start);
        if (end > lastEnd || start === 0) {
            out += expand(template, match);
        }
        lastEnd = end;
        searchAt = searchAt + 1 > end ? searchAt + 1 : end;
    }
    return out + text.slice(lastEnd);
}

// Traefik's redirectRegex: Go's ReplaceAllString(url, replacement) on the URL
// `scheme://host[:port]/path?query` as sent. In: $certbotless_redirect_from (that URL),
// $certbotless_redirect_regex (PCRE), $certbotless_redirect_replacement (as replacedPath's).
// Out: "" when the regex does not match or the URL is the same; "!502" when the new URL is one
// Go's url.Parse refuses (Traefik's answer); else the new URL.
function redirectedUrl(r) {
    var url = r.variables.certbotless_redirect_from;
    var regex = new RegExp(r.variables.certbotless_redirect_regex, 'g');
    regex.lastIndex = 0;
    if (!regex.test(url)) {
        return '';
    }
    var replaced = goReplaceAll(regex, url, r.variables.certbotless_redirect_replacement);
    if (!goParses(replaced)) {
        return '!502';
    }
    return replaced === url ? '' : replaced;
}

// Whether Go's url.Parse takes `url`: every `%` starts an escape; the host's characters are
// RFC 3986's (and Go's few more), escaped only above 0x7f (or %25), its port digits.
function goParses(url) {
    if (/%(?![0-9A-Fa-f]{2})/.test(url)) {
        return false;
    }
    var at = url.indexOf('://');
    if (at < 0) {
        return true;
    }
    var host = url.slice(at + 3).split('/')[0].split('?')[0];
    host = host.slice(host.lastIndexOf('@') + 1);
    if (/%(?!25)[0-7][0-9A-Fa-f]/.test(host)) {
        return false;
    }
    return /^(?:\[[^\]]*\]|[A-Za-z0-9\-._~!$&'()*+,;=<>"%]*)(?::[0-9]*)?$/.test(host);
}

function expand(template, match) {
    return template.replace(/\$(?:\$|\{([0-9]+)\})/g, function (all, group) {
        if (group === undefined) {
            return '$';
        }
        var value = match[Number(group)];
        return value === undefined ? '' : value;
    });
}

// Traefik's X-Forwarded-Tls-Client-Cert-Info (url-escaped) with what nginx has no variable
// for: the client certificate's serial number in decimal (SerialNumber), validity dates in Unix
// seconds (NB, NA) and subject alternative names (SAN, when it has any). In:
// $certbotless_cert_names (the Subject and Issuer the maps wrote, "" for none),
// $certbotless_cert_name_parts (a `!` in it: a name the maps cannot write as Traefik does),
// $certbotless_cert_fields (the fields asked, in Traefik's order). Out: "" (no header) without
// a client certificate, or when a part cannot be written as Traefik writes it.
function clientCertInfo(r) {
    var v = r.variables;
    if (!v.ssl_client_serial || v.certbotless_cert_name_parts.indexOf('!') !== -1) {
        return '';
    }
    var values = v.certbotless_cert_names ? [v.certbotless_cert_names] : [];
    var fields = v.certbotless_cert_fields.split(' ');
    for (var i = 0; i < fields.length; i++) {
        var value = certField(v, fields[i]);
        if (value === null) {
            return '';
        }
        if (value !== '') {
            values.push(fields[i] + '%3D%22' + value + '%22');
        }
    }
    return values.join('%3B');
}

// One field's value, url-escaped; "" when Traefik leaves it out (no SAN), null when it cannot
// be written as Traefik writes it.
function certField(v, field) {
    if (field === 'SAN') {
        var sans = certSans(v.ssl_client_raw_cert);
        return sans === null ? null : queryEscape(sans.join(','));
    }
    if (field === 'SerialNumber') {
        return decimal(v.ssl_client_serial);
    }
    return unixSeconds(field === 'NB' ? v.ssl_client_v_start : v.ssl_client_v_end);
}

// Go's url.QueryEscape of an ASCII text.
function queryEscape(text) {
    return text.replace(/[^A-Za-z0-9_.~ -]/g, function (c) {
        return '%' + ('0' + c.charCodeAt(0).toString(16).toUpperCase()).slice(-2);
    }).replace(/ /g, '+');
}

// Traefik's errors {url}: the request's URL as Go's url.URL writes it (the scheme, the Host,
// the escaped path and the query as sent, no `?` without one), query-escaped as Go's
// url.QueryEscape does, byte by byte.
function errorPageUrl(r) {
    var raw = r.rawVariables.request_uri;
    var target = '';
    for (var i = 0; i < raw.length; i++) {
        target += String.fromCharCode(raw[i]);
    }
    var at = target.indexOf('?');
    var path = at < 0 ? target : target.slice(0, at);
    var query = at < 0 ? '' : target.slice(at + 1);
    var host = r.headersIn.Host || r.variables.host;
    return queryEscape(r.variables.scheme + '://' + host + goEscapedPath(path) +
        (query === '' ? '' : '?' + query));
}

// Go's URL.EscapedPath of a path as sent (a byte string): as sent when Go takes it for a
// valid escaping, else decoded and escaped again as Go escapes a path.
function goEscapedPath(raw) {
    if (/^[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]\/%]*$/.test(raw)) {
        return raw;
    }
    var decoded = raw.replace(/%([0-9A-Fa-f]{2})/g, function (m, hex) {
        return String.fromCharCode(parseInt(hex, 16));
    });
    return decoded.replace(/[^A-Za-z0-9\-._~$&+,\/:;=@]/g, function (c) {
        return '%' + ('0' + c.charCodeAt(0).toString(16).toUpperCase()).slice(-2);
    });
}

// The subject alternative names of a PEM certificate as Go's x509 gives them to Traefik's
// getSANs: DNS names, then email addresses, IP addresses (as net.IP writes them) and URIs, each
// in the certificate's order; [] without the extension. null where Go's parser would refuse
// the certificate (or a URI it would write otherwise than as given).
function certSans(pem) {
    var der;
    try {
        der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    } catch (e) {
        return null;
    }
    var cert = derItem(der, 0, der.length);
    var tbs = cert && cert.tag === 0x30 ? derItem(der, cert.start, cert.end) : null;
    if (tbs === null || tbs.tag !== 0x30) {
        return null;
    }
    var found = [];
    for (var at = tbs.start; at < tbs.end;) {
        var field = derItem(der, at, tbs.end);
        if (field === null) {
            return null;
        }
        if (field.tag === 0xa3) {  // [3] extensions
            var list = derItem(der, field.start, field.end);
            if (list === null || !sanValues(der, list, found)) {
                return null;
            }
        }
        at = field.end;
    }
    return found.length > 1 ? null : (found[0] || []);  // Go refuses a repeated extension
}

// One DER element at `at` (before `end`): its tag and its content's bounds; null if malformed.
function derItem(der, at, end) {
    if (at + 2 > end || (der[at] & 0x1f) === 0x1f) {
        return null;
    }
    var length = der[at + 1];
    var start = at + 2;
    if (length & 0x80) {
        var count = length & 0x7f;
        if (count === 0 || count > 3 || start + count > end) {
            return null;
        }
        length = 0;
        for (var i = 0; i < count; i++) {
            length = length * 256 + der[start + i];
        }
        start += count;
    }
    return start + length > end ? null : { tag: der[at], start: start, end: start + length };
}

// Each SubjectAltName extension's names, pushed onto `found`; false if malformed.
function sanValues(der, list, found) {
    for (var at = list.start; at < list.end;) {
        var ext = derItem(der, at, list.end);
        var oid = ext === null ? null : derItem(der, ext.start, ext.end);
        if (oid === null || oid.tag !== 0x06) {
            return false;
        }
        if (oid.end - oid.start === 3 && der[oid.start] === 0x55 && der[oid.start + 1] === 0x1d &&
            der[oid.start + 2] === 0x11) {  // 2.5.29.17
            var value = derItem(der, oid.end, ext.end);
            if (value !== null && value.tag === 0x01) {  // critical
                value = derItem(der, value.end, ext.end);
            }
            var names = value === null || value.tag !== 0x04 ? null
                : generalNames(der, derItem(der, value.start, value.end));
            if (names === null) {
                return false;
            }
            found.push(names);
        }
        at = ext.end;
    }
    return true;
}

// GeneralNames as Go keeps them: dNSName [2], rfc822Name [1], iPAddress [7],
// uniformResourceIdentifier [6]; the other kinds are skipped, as Go skips them.
function generalNames(der, names) {
    if (names === null || names.tag !== 0x30) {
        return null;
    }
    var kinds = { 0x82: [], 0x81: [], 0x87: [], 0x86: [] };
    for (var at = names.start; at < names.end;) {
        var name = derItem(der, at, names.end);
        if (name === null) {
            return null;
        }
        if (kinds[name.tag] !== undefined) {
            var text = name.tag === 0x87 ? ipText(der, name) : ia5Text(der, name);
            if (text === null || (name.tag === 0x86 && (text = goUri(text)) === null)) {
                return null;
            }
            kinds[name.tag].push(text);
        }
        at = name.end;
    }
    return kinds[0x82].concat(kinds[0x81], kinds[0x87], kinds[0x86]);
}

function ia5Text(der, item) {
    var text = '';
    for (var i = item.start; i < item.end; i++) {
        if (der[i] > 0x7f) {
            return null;  // Go: "SAN … is malformed"
        }
        text += String.fromCharCode(der[i]);
    }
    return text;
}

// An IP address as Go's net.IP.String writes it: dotted IPv4 (also an IPv4-mapped IPv6
// address), else RFC 5952 (the first longest run of two or more zero groups as `::`).
function ipText(der, item) {
    var bytes = [];
    for (var i = item.start; i < item.end; i++) {
        bytes.push(der[i]);
    }
    var mapped = bytes.length === 16 && /^(0,){10}255,255,/.test(bytes.join(',') + ',');
    if (bytes.length === 4 || mapped) {
        return bytes.slice(-4).join('.');
    }
    if (bytes.length !== 16) {
        return null;  // Go: "cannot parse IP address of length N"
    }
    var groups = [];
    for (var g = 0; g < 16; g += 2) {
        groups.push((bytes[g] * 256 + bytes[g + 1]).toString(16));
    }
    var best = -1;
    var bestLength = 1;
    for (var start = 0; start < 8; start++) {
        var run = 0;
        while (start + run < 8 && groups[start + run] === '0') {
            run++;
        }
        if (run > bestLength) {
            best = start;
            bestLength = run;
        }
    }
    if (best < 0) {
        return groups.join(':');
    }
    return groups.slice(0, best).join(':') + '::' + groups.slice(best + bestLength).join(':');
}

// A URI SAN as Go's url.URL.String writes it once parsed: the scheme in lower case, an empty
// fragment dropped, the rest as given; null for one outside the plain forms where that holds
// (a host of DNS labels, an optional port; letters, digits, `-._~!$&'()*+,;=:@/?` and `%`
// escapes) and where Go's parser would refuse it.
function goUri(text) {
    var plain = "[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}";
    var m = new RegExp('^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?://([A-Za-z0-9.-]+)(?::[0-9]*)?' +
        '(?=[/?#]|$))?((?:' + plain + ')*)(?:#((?:' + plain + ')*))?$').exec(text);
    if (m === null || (m[2] !== undefined && !/^[^.]+(\.[^.]+)*$/.test(m[2]))) {
        return null;
    }
    if (m[1] === undefined && m[2] === undefined && /^[^\/?]*:/.test(m[3])) {
        return null;  // Go: "first path segment in URL cannot contain colon"
    }
    var scheme = m[1] === undefined ? '' : m[1].toLowerCase() + ':';
    var rest = text.slice(m[1] === undefined ? 0 : m[1].length + 1);
    return scheme + (m[4] === '' ? rest.slice(0, -1) : rest);
}

// OpenSSL's hexadecimal serial ($ssl_client_serial) in decimal, as Go's big.Int writes it
// (no BigInt in njs's engine: digits of base 10^7, the lowest first).
function decimal(hex) {
    var match = /^(-?)([0-9A-Fa-f]+)$/.exec(hex);
    if (match === null) {
        return null;
    }
    var digits = [0];
    for (var i = 0; i < match[2].length; i++) {
        var carry = parseInt(match[2].charAt(i), 16);
        for (var j = 0; j < digits.length; j++) {
            var sum = digits[j] * 16 + carry;
            digits[j] = sum % 10000000;
            carry = Math.floor(sum / 10000000);
        }
        if (carry) {
            digits.push(carry);
        }
    }
    var out = String(digits[digits.length - 1]);
    for (var k = digits.length - 2; k >= 0; k--) {
        out += ('000000' + digits[k]).slice(-7);
    }
    return (out === '0' ? '' : match[1]) + out;
}

// OpenSSL's date ($ssl_client_v_start, `Dec  6 21:00:00 2027 GMT`) in Unix seconds; null for
// another form, or before 1970 (Traefik writes those as uint64).
function unixSeconds(text) {
    var m = /^([A-Z][a-z]{2}) +([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([0-9]{4}) GMT$/
        .exec(text);
    var month = m === null ? -1 : 'JanFebMarAprMayJunJulAugSepOctNovDec'.indexOf(m[1]);
    if (month < 0 || month % 3 !== 0) {
        return null;
    }
    var ms = Date.UTC(Number(m[6]), month / 3, Number(m[2]), Number(m[3]), Number(m[4]),
        Number(m[5]));
    return ms < 0 ? null : String(ms / 1000);
}

// Traefik's digestAuth (abbot's go-http-auth: RFC 2617, MD5, qop="auth"), without its
// in-memory nonce table, so that every task of the edge, before and after a roll, knows a
// nonce: a nonce is its Unix time (hex) and an HMAC-SHA256 of it under the edge's key, valid
// NONCE_SECONDS; the opaque is the key's HMAC of the realm (both hold across rolls that change
// the users, and across the routes of one realm, as needs no state). The nonce count
// is not tracked (a request may be replayed while its nonce is valid). In:
// $certbotless_digest_realm, $certbotless_digest_users (the htdigest files, space-separated),
// $certbotless_digest_key (the key's file). Out: the user's name; "" when the request does not
// authenticate; ":stale" when it would but its nonce is too old (the challenge then says
// stale="true", and a browser asks again with a new nonce, without prompting).
var NONCE_SECONDS = 600;

function digestUser(r) {
    var v = r.variables;
    var header = r.headersIn.Authorization || '';
    var space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space) !== 'Digest') {
        return '';
    }
    var auth = parsePairs(header.slice(space + 1));
    var key = fs.readFileSync(v.certbotless_digest_key);
    var algorithm = auth.algorithm === undefined ? 'MD5' : auth.algorithm;
    if (auth.opaque !== opaque(key, v) || algorithm !== 'MD5' || auth.qop !== 'auth') {
        return '';
    }
    var uri = auth.uri === undefined ? '' : auth.uri;
    if (uri !== v.request_uri && !underUri(uri, v.request_uri)) {
        return '';
    }
    var ha1 = secretDigest(v, auth.username);
    if (ha1 === null) {
        return '';  // an unknown user (go-http-auth would hash an empty secret)
    }
    var ha2 = md5(r.method + ':' + uri);
    var kd = md5([ha1, auth.nonce, auth.nc, auth.cnonce, auth.qop, ha2].join(':'));
    if (!sameText(kd, auth.response || '') || !/^[0-9A-Fa-f]{1,16}$/.test(auth.nc || '')) {
        return '';
    }
    var age = nonceAge(key, v, auth.nonce || '');
    if (age === null) {
        return '';
    }
    return age > NONCE_SECONDS ? ':stale' : auth.username;
}

// The 401's WWW-Authenticate, as go-http-auth writes it, with a new nonce.
function digestChallenge(r) {
    var v = r.variables;
    var key = fs.readFileSync(v.certbotless_digest_key);
    var stale = v.certbotless_digest_user === ':stale' ? 'stale="true", ' : '';
    return 'Digest realm="' + v.certbotless_digest_realm + '", nonce="' +
        nonce(key, v, Math.floor(Date.now() / 1000)) + '", opaque="' + opaque(key, v) +
        '", ' + stale + 'algorithm="MD5", qop="auth"';
}

function md5(text) {
    return crypto.createHash('md5').update(text).digest('hex');
}

function mac(key, text) {
    return crypto.createHmac('sha256', key).update(text).digest('hex').slice(0, 32);
}

function opaque(key, v) {
    return mac(key, 'opaque:' + v.certbotless_digest_realm);
}

function nonce(key, v, seconds) {
    var time = seconds.toString(16);
    return time + '-' + mac(key, 'nonce:' + v.certbotless_digest_realm + ':' + time);
}

// A nonce's age in seconds, or null when the edge did not make it (or dates it ahead).
function nonceAge(key, v, given) {
    var match = /^([0-9a-f]{1,12})-[0-9a-f]{32}$/.exec(given);
    if (match === null) {
        return null;
    }
    var seconds = parseInt(match[1], 16);
    var age = Math.floor(Date.now() / 1000) - seconds;
    if (!sameText(nonce(key, v, seconds), given) || age < -60) {
        return null;  // a minute's grace for the clocks of the swarm's nodes
    }
    return age;
}

// The user's HA1 for the realm (the last line for them: the labels' users win over the
// file's), or null.
function secretDigest(v, user) {
    if (!user) {
        return null;
    }
    var files = v.certbotless_digest_users.split(' ');
    var lines = [];
    for (var f = 0; f < files.length; f++) {
        lines = lines.concat(fs.readFileSync(files[f], 'utf8').split('\n'));
    }
    var start = user + ':' + v.certbotless_digest_realm + ':';
    var found = null;
    for (var i = 0; i < lines.length; i++) {
        var line = lines[i].replace(/\r$/, '');
        if (line.indexOf(start) === 0 && line.split(':').length === 3) {
            found = line.slice(start.length);
        }
    }
    return found;
}

// go-http-auth's lenient check: the digest's uri, when not the request target, may be a
// path the request's path starts with (both decoded).
function underUri(uri, target) {
    var given = decodedPath(uri.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\/]*/, ''));
    var asked = decodedPath(target);
    return given !== null && asked !== null && asked.indexOf(given) === 0;
}

function decodedPath(target) {
    try {
        return decodeURIComponent(target.split('#')[0].split('?')[0]);
    } catch (e) {
        return null;
    }
}

function sameText(a, b) {
    var differ = a.length ^ b.length;
    for (var i = 0; i < a.length && i < b.length; i++) {
        differ |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return differ === 0;
}

// go-http-auth's ParsePairs over ParseList (RFC 2068 lists: quotes, backslash escapes).
function parsePairs(value) {
    var pairs = {};
    var list = parseList(value.trim());
    for (var i = 0; i < list.length; i++) {
        var at = list[i].indexOf('=');
        if (at < 0) {
            pairs[list[i]] = '';
            continue;
        }
        var text = list[i].slice(at + 1);
        if (text.length > 1 && text.charAt(0) === '"' && text.charAt(text.length - 1) === '"') {
            text = text.slice(1, -1);
        }
        pairs[list[i].slice(0, at)] = text;
    }
    return pairs;
}

function parseList(value) {
    var list = [];
    var escape = false;
    var quote = false;
    var part = '';
    for (var i = 0; i < value.length; i++) {
        var c = value.charAt(i);
        if (escape) {
            part += c;
            escape = false;
        } else if (quote) {
            if (c === '\\') {
                escape = true;
            } else {
                quote = c !== '"';
                part += c;
            }
        } else if (c === ',') {
            list.push(part.trim());
            part = '';
        } else {
            quote = c === '"';
            part += c;
        }
    }
    if (part !== '') {
        list.push(part.trim());
    }
    return list;
}

// Traefik's active health checks (pkg/healthcheck): js_periodic runs healthCheck in one worker,
// in each check's location, every `tick` ms (edge/health_checks.py). The service's state is in
// the shared dict certbotless_health under the check's key ("down" or "up"; nothing yet: up,
// as Traefik's servers start), with the time its next check is due (key + ':due'): one
// interval after nginx starts (when the first run comes), then every interval while up, every
// unhealthy interval while down. In: $certbotless_health_checks (every check by key,
// JSON: url, method, host, headers, status, follow, timeout, interval, unhealthy, verify,
// tick) and $document_root (the location's root ends with its check's key).
var HEALTH_REDIRECTS = 10;  // Go's client stops after 10 redirects (an error: down)

function healthCheck(s) {
    var key = s.variables.document_root.split('/').pop();
    var check = JSON.parse(s.variables.certbotless_health_checks)[key];
    var dict = ngx.shared.certbotless_health;
    var now = Date.now();
    var due = dict.get(key + ':due');
    if (due === undefined) {  // the first run, as nginx starts
        dict.set(key + ':due', String(now + check.interval));
        return;
    }
    // Half a tick early counts as due: runs come every tick, give or take a few ms.
    if (now + check.tick / 2 < Number(due)) {
        return;
    }
    return healthAnswer(check, now).then(function (healthy) {
        dict.set(key, healthy ? 'up' : 'down');
        dict.set(key + ':due', String(now + (healthy ? check.interval : check.unhealthy)));
    });
}

// Whether the service answers as healthy within the check's timeout: `status` when the check
// gives one, else any status from 200 to 399 (Go's client having followed the redirects).
function healthAnswer(check, started) {
    var deadline = started + check.timeout;
    return healthFetch(check, check.url, check.method, check.host, 0, deadline)
        .then(function (status) {
            return check.status ? status === check.status : status >= 200 && status < 400;
        }, function (e) {
            ngx.log(ngx.WARN, 'health check of ' + check.url + ' failed: ' + e);
            return false;
        });
}

// The answer's status, after the redirects Go's client follows (301, 302, 303, 307, 308 with a
// Location): 301-303 ask again with GET (HEAD stays HEAD); the Host the check gives is kept
// for a relative Location only; Authorization and Cookie are not sent to another host.
function healthFetch(check, url, method, host, hops, deadline) {
    var left = deadline - Date.now();
    if (left <= 0) {
        return Promise.reject(new Error('timeout'));
    }
    var headers = {};
    for (var i = 0; i < check.headers.length; i++) {
        var name = check.headers[i][0];
        if (hops === 0 || authority(url) === authority(check.url) ||
                !/^(authorization|cookie|cookie2|www-authenticate)$/i.test(name)) {
            headers[name] = check.headers[i][1];
        }
    }
    if (host) {
        headers.Host = host;
    }
    var timer;
    var timeout = new Promise(function (resolve, reject) {
        timer = setTimeout(function () { reject(new Error('timeout')); }, left);
    });
    var asked = ngx.fetch(url, {method: method, headers: headers, verify: check.verify});
    return Promise.race([asked, timeout]).then(function (answer) {
        clearTimeout(timer);
        var location = answer.headers.get('Location');
        if (!check.follow || [301, 302, 303, 307, 308].indexOf(answer.status) < 0 || !location) {
            return answer.status;
        }
        if (hops === HEALTH_REDIRECTS) {
            throw new Error('stopped after ' + HEALTH_REDIRECTS + ' redirects');
        }
        var absolute = /^[A-Za-z][A-Za-z0-9+.-]*:/.test(location);
        var again = answer.status <= 303 && method !== 'GET' && method !== 'HEAD' ? 'GET' : method;
        return healthFetch(check, resolvedUrl(url, location), again, absolute ? '' : host,
            hops + 1, deadline);
    }, function (e) {
        clearTimeout(timer);
        throw e;
    });
}

function authority(url) {
    var match = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^\/?#]*)/.exec(url);
    return match === null ? '' : match[1].toLowerCase();
}

// A Location resolved against the URL asked (RFC 3986, as Go's URL.ResolveReference, but for
// `.` and `..` segments, which stay).
function resolvedUrl(base, location) {
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) {
        return location;
    }
    var scheme = base.slice(0, base.indexOf(':') + 1);
    if (location.slice(0, 2) === '//') {
        return scheme + location;
    }
    var origin = scheme + '//' + authority(base);
    var path = base.slice(origin.length).split(/[?#]/)[0] || '/';
    if (location.charAt(0) === '/') {
        return origin + location;
    }
    if (location.charAt(0) === '?') {
        return origin + path + location;
    }
    return origin + path.slice(0, path.lastIndexOf('/') + 1) + location;
}

// "1" when the route's service ($certbotless_health_key's check) is down, else "".
function serviceDown(r) {
    var key = r.variables.certbotless_health_key;
    return key && ngx.shared.certbotless_health.get(key) === 'down' ? '1' : '';
}

// Traefik's forwardAuth maxResponseBodySize: Traefik reads at most the limit of the auth
// server's answer body and answers 401 (empty) when it is longer, whatever the status. nginx's
// auth subrequest reads no body, so its location runs authAnswerMeasured, which asks the
// auth server through `<its uri>/asked` (whose filters below measure the body, with or without
// a Content-Length) and answers the auth subrequest with the auth server's status and headers,
// or 401 and AUTH_BODY_OVER when the body is longer than the limit.
var AUTH_BODY_OVER = 'Certbotless-Auth-Body-Over';

function authAnswerMeasured(r) {
    r.subrequest(r.uri + '/asked', function (reply) {
        var raw = reply.rawHeadersOut || [];
        var values = {};
        var names = [];
        for (var i = 0; i < raw.length; i++) {
            var key = raw[i][0].toLowerCase();
            if (/^(content-length|transfer-encoding|connection|keep-alive)$/.test(key)) {
                continue;
            }
            if (values[key] === undefined) {
                values[key] = [];
                names.push(raw[i][0]);
            }
            values[key].push(raw[i][1]);
        }
        for (var n = 0; n < names.length; n++) {
            var all = values[names[n].toLowerCase()];
            try {
                r.headersOut[names[n]] = all.length === 1 ? all[0] : all;
            } catch (e) {
                r.headersOut[names[n]] = all[0];  // a header nginx keeps one of
            }
        }
        if (reply.responseText) {
            r.headersOut[AUTH_BODY_OVER] = '1';
            r.return(401);
            return;
        }
        r.return(reply.status);
    });
}

// The asked answer's body reaches authAnswerMeasured as "!" when it is longer than
// $certbotless_auth_body_limit bytes, else empty (so no answer outgrows the subrequest's
// buffer). In: $certbotless_auth_body_seen (a js_var: the bytes so far).
function authBodyHeaders(r) {
    delete r.headersOut['Content-Length'];
}

function authBodyMeasure(r, data, flags) {
    var v = r.variables;
    var before = v.certbotless_auth_body_seen ? Number(v.certbotless_auth_body_seen) : 0;
    var seen = before + data.length;
    var limit = Number(v.certbotless_auth_body_limit);
    v.certbotless_auth_body_seen = String(seen);
    r.sendBuffer(before <= limit && seen > limit ? '!' : '', flags);
}

// Traefik's forwardAuth forwardBody. nginx's auth_request sends its subrequest no body, so
// the route's location runs this once nginx has read the body (js_content reads it first; a
// body over maxBodySize is nginx's 413 there, sent to $certbotless_body_over; maxBodySize=0,
// which client_max_body_size cannot say, is checked here). It asks the auth server at
// $certbotless_body_auth, whose subrequest carries the parent's body; a 2xx passes the request
// on to the route's own location ($certbotless_body_next) with the answer's listed headers
// ($certbotless_body_names, in $certbotless_body_header_<n>). Any other answer goes where
// auth_request's would: 401 and 403 as they are, any other 500, to the gate that passes the
// auth server's own answer on (@certbotless_auth_answer_<index>_<code>, when listed in
// $certbotless_body_gates), else answered as that status (the route's error pages).
function forwardBodyRead(r) {
    var v = r.variables;
    if (v.certbotless_body_limit === '0' && r.requestBuffer !== undefined &&
            r.requestBuffer.length > 0) {
        r.internalRedirect(v.certbotless_body_over);
        return;
    }
    r.subrequest(v.certbotless_body_auth, { method: 'GET' }, function (reply) {
        var status = reply.status;
        if (status >= 200 && status < 300) {
            var names = v.certbotless_body_names ? v.certbotless_body_names.split(' ') : [];
            for (var i = 0; i < names.length; i++) {
                var value = reply.headersOut[names[i]];
                v['certbotless_body_header_' + i] = value === undefined ? '' : String(value);
            }
            r.internalRedirect(v.certbotless_body_next);
            return;
        }
        var code = status === 401 || status === 403 ? status : 500;
        v['certbotless_auth_' + v.certbotless_body_index + '_status'] = String(status);
        if (v.certbotless_body_gates.split(' ').indexOf(String(code)) >= 0) {
            r.internalRedirect('@certbotless_auth_answer_' + v.certbotless_body_index + '_' +
                               code);
            return;
        }
        r.return(code);
    });
}

// The auth answer forwardBodyRead reads: its status and headers; its body dropped (a
// subrequest's answer must fit a buffer; a refusal's body is asked again by the gate).
function authBodyDrop(r, data, flags) {
    r.sendBuffer('', flags);
}

export default {
    replacedPath, redirectedUrl, clientCertInfo, digestUser, digestChallenge, healthCheck,
    serviceDown, authAnswerMeasured, authBodyHeaders, authBodyMeasure, errorPageUrl,
    forwardBodyRead, authBodyDrop
};
