/*
 * leadstream tracking snippet. No framework, no build step: serve it as is
 * (the collector does, at /js/leadstream.js) and add it to every page:
 *
 *   <script src="https://collect.example.com/js/leadstream.js" async></script>
 *
 * Optional attributes: data-collector="https://collect.example.com" (default: the
 * origin the script was loaded from), data-auto="false" (do not send the page view).
 *
 * It keeps a first-party anonymous id (cookie "ls_aid", mirrored in localStorage),
 * sends a page view (URL with its UTM parameters, referrer, title) with
 * navigator.sendBeacon and falls back to the 1x1 pixel, and exposes
 * leadstream.identify(email, traits) for forms.
 */
(function (w, d) {
  "use strict";
  if (w.leadstream && w.leadstream.loaded) return;
  var COOKIE = "ls_aid";
  var TWO_YEARS_S = 63072000;
  var script = d.currentScript;
  var endpoint = (script && script.getAttribute("data-collector")) || "";
  if (!endpoint && script && script.src) endpoint = script.src.replace(/\/js\/leadstream\.js(\?.*)?$/, "");
  endpoint = endpoint.replace(/\/+$/, "");

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    var b = new Uint8Array(16);
    (w.crypto || w.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function readCookie(name) {
    var parts = d.cookie ? d.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function anonymousId() {
    var id = readCookie(COOKIE);
    try { id = id || w.localStorage.getItem(COOKIE); } catch (e) { /* storage blocked */ }
    id = id || uuid();
    d.cookie = COOKIE + "=" + encodeURIComponent(id) + "; Max-Age=" + TWO_YEARS_S + "; Path=/; SameSite=Lax" +
      (w.location.protocol === "https:" ? "; Secure" : "");
    try { w.localStorage.setItem(COOKIE, id); } catch (e) { /* storage blocked */ }
    return id;
  }

  var aid = anonymousId();

  function beacon(path, payload) {
    var body = JSON.stringify(payload);
    // text/plain keeps the beacon a "simple" cross-origin request: no preflight.
    if (w.navigator.sendBeacon) {
      try {
        if (w.navigator.sendBeacon(endpoint + path, new Blob([body], { type: "text/plain;charset=UTF-8" }))) return true;
      } catch (e) { /* fall through */ }
    }
    return false;
  }

  function pixel(params) {
    var q = [];
    for (var k in params) {
      if (params[k] !== undefined && params[k] !== null && params[k] !== "") {
        q.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
      }
    }
    var img = new Image(1, 1);
    img.src = endpoint + "/p.gif?" + q.join("&");
    return true;
  }

  function track(type, extra) {
    var created = Date.now();
    var event = {
      event_id: uuid(), type: type || "page_view", url: w.location.href, referrer: d.referrer || null,
      title: d.title || null, created_at: created, properties: (extra && extra.properties) || {}
    };
    if (beacon("/collect", { anonymous_id: aid, sent_at: Date.now(), events: [event] })) return event.event_id;
    pixel({ u: event.url, r: event.referrer, aid: aid, t: event.type, eid: event.event_id, ti: event.title,
            ct: created, st: Date.now() });
    return event.event_id;
  }

  function identify(email, traits) {
    traits = traits || {};
    var created = Date.now();
    var body = { event_id: uuid(), anonymous_id: aid, created_at: created, traits: {} };
    if (email) body.email = email;
    for (var k in traits) {
      if (k === "contact_id" || k === "source") body[k] = traits[k];
      else body.traits[k] = String(traits[k]);
    }
    body.source = body.source || "web_form";
    body.sent_at = Date.now();
    if (beacon("/identify", body)) return body.event_id;
    if (w.fetch) {
      w.fetch(endpoint + "/identify", { method: "POST", body: JSON.stringify(body), keepalive: true,
                                        mode: "no-cors", credentials: "include",
                                        headers: { "Content-Type": "text/plain;charset=UTF-8" } });
    }
    return body.event_id;
  }

  w.leadstream = {
    loaded: true,
    page: function (extra) { return track("page_view", extra); },
    track: track,
    identify: identify,
    anonymousId: function () { return aid; }
  };
  if (!script || script.getAttribute("data-auto") !== "false") track("page_view");
})(window, document);
