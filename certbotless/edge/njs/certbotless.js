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

export default { replacedPath };
