// Traefik's circuitBreaker (oxy's cbreaker), for edge/breaker.py. Written for njs's own engine
// (ES5 syntax); needs njs 0.8.1 (shared dictionaries, probed with js_periodic).
//
// A route's breaker comes in $certbotless_breaker (JSON): `id`; `period`, `fallback`,
// `recovery` (ms); `when` (the expression, see labels/traefik/middlewares/breaker_expression.py),
// `ranges` and `limits` (what its metrics count). Its state, in certbotless_breaker_states:
// `<id>:trip` when it last tripped (absent: never), `<id>:recovering` when its recovery began,
// `<id>:allowed` and `<id>:denied` the requests recovery let through and refused, `<id>:next`
// when the expression may be checked again. Its metrics, in certbotless_breaker_metrics (which
// forgets them after 70 s), counted since it last tripped (oxy resets them then):
// `<id>:<trip>:<second>:n|e|r<i>` answers, 502 and 504 answers, answers in ranges[i];
// `<id>:<trip>:L<10 s period>:n|<k>` answers, answers of at most limits[k] ms.

function states() {
    return ngx.shared.certbotless_breaker_states;
}

function metrics() {
    return ngx.shared.certbotless_breaker_metrics;
}

// js_set for the route's rewrite phase: "" lets the request through, "1" answers the
// breaker's status (oxy's activateFallback).
function gate(r) {
    var b = JSON.parse(r.variables.certbotless_breaker);
    var s = states();
    var trip = s.get(b.id + ':trip');
    var now = Date.now();
    if (trip === undefined) {
        return '';  // standby
    }
    if (now < trip + b.fallback) {
        return '1';  // tripped
    }
    var start = s.get(b.id + ':recovering');
    if (start === undefined || start < trip + b.fallback) {
        start = now;  // recovery begins with the first request after the fallback
        s.set(b.id + ':recovering', now);
        s.set(b.id + ':allowed', 0);
        s.set(b.id + ':denied', 0);
    }
    if (now > start + b.recovery) {
        return '';  // standby again
    }
    // oxy's ratioController: let it through if the share let through stays under the target,
    // which grows linearly from 0 to 0.5 over the recovery.
    var allowed = s.get(b.id + ':allowed') || 0;
    var denied = s.get(b.id + ':denied') || 0;
    var target = 0.5 * (now - start) / b.recovery;
    if ((allowed + 1) / (allowed + denied + 1) < target) {
        s.incr(b.id + ':allowed', 1, 0);
        return '';
    }
    s.incr(b.id + ':denied', 1, 0);
    return '1';
}

// js_set for the route's access log condition (the log phase): counts the answer of a request
// the gate let through, then checks the expression (oxy's serve and checkAndSet). Always "".
function record(r) {
    var v = r.variables;
    if (!v.certbotless_breaker || v.certbotless_breaker_passed !== '1') {
        return '';
    }
    var b = JSON.parse(v.certbotless_breaker);
    var status = Number(v.status);
    var ms = Math.round(Number(v.request_time) * 1000);
    var now = Date.now();
    var trip = states().get(b.id + ':trip') || 0;
    var m = metrics();
    var second = b.id + ':' + trip + ':' + Math.floor(now / 1000) + ':';
    m.incr(second + 'n', 1, 0);
    if (status === 502 || status === 504) {
        m.incr(second + 'e', 1, 0);  // oxy counts these as network errors
    }
    for (var i = 0; i < b.ranges.length; i++) {
        if (status >= b.ranges[i][0] && status < b.ranges[i][1]) {
            m.incr(second + 'r' + i, 1, 0);
        }
    }
    if (b.limits.length) {
        var period = b.id + ':' + trip + ':L' + Math.floor(now / 10000) + ':';
        m.incr(period + 'n', 1, 0);
        for (var k = 0; k < b.limits.length; k++) {
            if (ms <= b.limits[k]) {
                m.incr(period + k, 1, 0);
            }
        }
    }
    check(b, now, trip);
    return '';
}

// At most once per check period; not while tripped; trips when the expression holds.
function check(b, now, trip) {
    var s = states();
    var next = s.get(b.id + ':next') || 0;
    if (now <= next) {
        return;
    }
    s.set(b.id + ':next', now + b.period);
    if (trip && now < trip + b.fallback) {
        return;
    }
    var window = new Window(b, now, trip);
    if (holds(b.when, window)) {
        s.set(b.id + ':trip', now);
    }
}

// The metrics as oxy keeps them: counters over the last 10 s (this second and the 9 before),
// latencies over the last minute (this 10 s period and the 5 before).
function Window(b, now, trip) {
    this.prefix = b.id + ':' + trip + ':';
    this.second = Math.floor(now / 1000);
    this.period = Math.floor(now / 10000);
    this.sums = {};
}

Window.prototype.count = function (name) {
    if (this.sums[name] === undefined) {
        var m = metrics();
        var sum = 0;
        for (var i = 0; i < 10; i++) {
            sum += m.get(this.prefix + (this.second - i) + ':' + name) || 0;
        }
        this.sums[name] = sum;
    }
    return this.sums[name];
};

Window.prototype.latencies = function (name) {
    var key = 'L' + name;
    if (this.sums[key] === undefined) {
        var m = metrics();
        var sum = 0;
        for (var i = 0; i < 6; i++) {
            sum += m.get(this.prefix + 'L' + (this.period - i) + ':' + name) || 0;
        }
        this.sums[key] = sum;
    }
    return this.sums[key];
};

function holds(node, w) {
    var kind = node[0];
    if (kind === 'or') {
        return holds(node[1], w) || holds(node[2], w);
    }
    if (kind === 'and') {
        return holds(node[1], w) && holds(node[2], w);
    }
    if (kind === 'latency') {
        return latencyHolds(node, w);
    }
    var value;
    if (kind === 'net') {
        value = w.count('n') === 0 ? 0 : w.count('e') / w.count('n');
    } else if (kind === 'codes') {
        var divisor = w.count('r' + node[4]);
        value = divisor === 0 ? 0 : w.count('r' + node[3]) / divisor;
    } else {
        value = w.count('n');  // RequestThreshold
    }
    return compare(node[1], value, node[2]);
}

function compare(op, a, b) {
    switch (op) {
    case '>': return a > b;
    case '>=': return a >= b;
    case '<': return a < b;
    case '<=': return a <= b;
    case '==': return a === b;
    default: return a !== b;
    }
}

// LatencyAtQuantileMS(q) op c, as HdrHistogram's ValueAtQuantile answers: the smallest latency
// L with at least rank = round(q% of the answers) at most L (0 when rank is 0). Whether L is
// over, at or under c follows from the answers of at most c and at most c - 1 ms.
function latencyHolds(node, w) {
    var op = node[1];
    var c = node[2];
    var q = Math.min(node[3], 100);
    var rank = Math.floor(q / 100 * w.latencies('n') + 0.5);
    if (rank === 0) {
        return compare(op, 0, c);
    }
    var over = w.latencies(String(node[4])) < rank;  // L > c
    var under = w.latencies(String(node[5])) >= rank;  // L < c
    var equal = !over && !under;
    switch (op) {
    case '>': return over;
    case '>=': return over || equal;
    case '<': return under;
    case '<=': return under || equal;
    case '==': return equal;
    default: return !equal;
    }
}

export default { gate, record };
