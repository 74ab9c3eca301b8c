// certbotless's njs functions (nginx's JavaScript module), for what nginx's configuration
// language cannot say. Each is read through js_set; the route's own values come in variables
// its location sets. Written for njs's own engine (no BigInt, ES5 syntax and a few ES6 forms).

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

function expand(template, match) {
    return template.replace(/\$(?:\$|\{([0-9]+)\})/g, function (all, group) {
        if (group === undefined) {
            return '$';
        }
        var value = match[Number(group)];
        return value === undefined ? '' : value;
    });
}

// Traefik's X-Forwarded-Tls-Client-Cert-Info (url-escaped) with the client certificate's
// numbers: its serial number in decimal (SerialNumber) and validity dates in Unix seconds (NB,
// NA). In: $certbotless_cert_names (the Subject and Issuer the maps wrote, "" for none),
// $certbotless_cert_name_parts (a `!` in it: a name the maps cannot write as Traefik does),
// $certbotless_cert_numbers (the numbers asked, in Traefik's order). Out: "" (no header) without
// a client certificate, or when a part cannot be written as Traefik writes it.
function clientCertInfo(r) {
    var v = r.variables;
    if (!v.ssl_client_serial || v.certbotless_cert_name_parts.indexOf('!') !== -1) {
        return '';
    }
    var values = v.certbotless_cert_names ? [v.certbotless_cert_names] : [];
    var numbers = v.certbotless_cert_numbers.split(' ');
    for (var i = 0; i < numbers.length; i++) {
        var value = numbers[i] === 'SerialNumber' ? decimal(v.ssl_client_serial)
            : unixSeconds(numbers[i] === 'NB' ? v.ssl_client_v_start : v.ssl_client_v_end);
        if (value === null) {
            return '';
        }
        values.push(numbers[i] + '%3D%22' + value + '%22');
    }
    return values.join('%3B');
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

export default { replacedPath, clientCertInfo };
