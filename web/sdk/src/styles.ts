// All of the SDK's CSS, injected once as <style id="herald-styles">. Every class starts
// with "herald-". The look follows the host page: the font is inherited and every colour,
// radius, shadow and z-index reads a CSS custom property the page may set (on :root or
// any ancestor of the SDK's elements), falling back to a neutral light theme:
//
//   --herald-font         font-family             (inherit)
//   --herald-font-size    base font size          (15px)
//   --herald-bg           surface colour          (#fff)
//   --herald-fg           text colour             (#1f2328)
//   --herald-muted        secondary text colour   (#59636e)
//   --herald-border       border colour           (rgba(31,35,40,.15))
//   --herald-accent       links, primary button   (#0969da)
//   --herald-accent-fg    primary button text     (#fff)
//   --herald-focus        focus outline colour    (--herald-accent)
//   --herald-badge        unread badge colour     (#d1242f)
//   --herald-radius       corner radius           (8px)
//   --herald-shadow       pop-up shadow           (0 8px 24px rgba(31,35,40,.2))
//   --herald-backdrop     modal backdrop          (rgba(31,35,40,.5))
//   --herald-z            z-index of pop-ups and the inbox panel (2147483000)
//   --herald-modal-width  modal width             (480px)
//   --herald-banner-width banner width            (960px)
//
// Focus is always visible (:focus-visible outline), and prefers-reduced-motion: reduce
// turns every animation and transition off.

const CSS = `
.herald-ui,.herald-ui *,.herald-ui ::before,.herald-ui ::after{box-sizing:border-box}
.herald-ui{--h-bg:var(--herald-bg,#fff);--h-fg:var(--herald-fg,#1f2328);--h-muted:var(--herald-muted,#59636e);--h-border:var(--herald-border,rgba(31,35,40,.15));--h-accent:var(--herald-accent,#0969da);--h-accent-fg:var(--herald-accent-fg,#fff);--h-radius:var(--herald-radius,8px);--h-shadow:var(--herald-shadow,0 8px 24px rgba(31,35,40,.2));--h-z:var(--herald-z,2147483000);font-family:var(--herald-font,inherit);font-size:var(--herald-font-size,15px);line-height:1.45;color:var(--h-fg);text-align:left}
.herald-ui :focus-visible{outline:2px solid var(--herald-focus,var(--h-accent));outline-offset:2px}
.herald-ui svg{width:18px;height:18px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round}
.herald-ui [hidden]{display:none!important}
.herald-card{position:relative;background:var(--h-bg);color:var(--h-fg);border:1px solid var(--h-border);border-radius:var(--h-radius);box-shadow:var(--h-shadow);padding:16px}
.herald-card>.herald-text{padding-right:24px}
.herald-image{display:block;max-width:100%;max-height:240px;margin:0 0 12px;border-radius:calc(var(--h-radius) - 2px)}
.herald-title{font-weight:600;font-size:1.05em;margin:0 0 4px}
.herald-body p,.herald-body ul,.herald-body ol{margin:0 0 8px}
.herald-body>:last-child{margin-bottom:0}
.herald-body ul,.herald-body ol{padding-left:1.4em}
.herald-body a{color:var(--h-accent);text-decoration:underline}
.herald-body code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;background:rgba(127,127,127,.15);padding:.1em .3em;border-radius:4px}
.herald-actions{display:flex;flex-wrap:wrap;gap:8px;margin-top:12px}
.herald-btn{font:inherit;font-weight:500;margin:0;padding:6px 14px;line-height:1.4;cursor:pointer;border:1px solid var(--h-border);border-radius:calc(var(--h-radius) - 2px);background:transparent;color:var(--h-fg)}
.herald-btn:hover{background:rgba(127,127,127,.12)}
.herald-btn--primary,.herald-btn--primary:hover{background:var(--h-accent);border-color:var(--h-accent);color:var(--h-accent-fg)}
.herald-btn--primary:hover{filter:brightness(1.1)}
.herald-close{position:absolute;top:8px;right:8px;display:flex;align-items:center;justify-content:center;width:28px;height:28px;margin:0;padding:0;border:0;border-radius:50%;background:transparent;color:var(--h-muted);cursor:pointer}
.herald-close:hover{background:rgba(127,127,127,.15);color:var(--h-fg)}
.herald-mute{display:block;font:inherit;font-size:.85em;margin:10px 0 0;padding:0;border:0;background:none;color:var(--h-muted);text-decoration:underline;cursor:pointer}
.herald-banner{position:fixed;left:0;right:0;z-index:var(--h-z);display:flex;justify-content:center;padding:8px;pointer-events:none}
.herald-banner--top{top:0}
.herald-banner--bottom{bottom:0}
.herald-banner .herald-card{width:100%;max-width:var(--herald-banner-width,960px);pointer-events:auto;animation:herald-in .2s ease-out}
.herald-backdrop{position:fixed;inset:0;z-index:var(--h-z);display:flex;align-items:center;justify-content:center;padding:16px;background:var(--herald-backdrop,rgba(31,35,40,.5));animation:herald-fade .15s ease-out}
.herald-modal{width:100%;max-width:var(--herald-modal-width,480px);max-height:100%;overflow:auto;border-radius:var(--h-radius);animation:herald-in .2s ease-out}
.herald-modal:focus{outline:none}
.herald-modal .herald-card{padding:24px}
.herald-modal .herald-title{font-size:1.25em}
.herald-tooltip{position:fixed;top:0;left:0;z-index:var(--h-z);width:max-content;max-width:min(320px,calc(100vw - 16px));animation:herald-fade .15s ease-out}
.herald-tooltip .herald-card{padding:12px 14px}
.herald-arrow{position:absolute;z-index:1;width:12px;height:12px;margin:-6px;background:var(--h-bg);border:1px solid var(--h-border);transform:rotate(45deg)}
.herald-tooltip--bottom .herald-arrow{top:0;border-right:0;border-bottom:0}
.herald-tooltip--top .herald-arrow{bottom:0;border-left:0;border-top:0}
.herald-tooltip--right .herald-arrow{left:0;border-top:0;border-right:0}
.herald-tooltip--left .herald-arrow{right:0;border-bottom:0;border-left:0}
.herald-inbox{position:relative;display:inline-block;color:inherit}
.herald-inbox-button{position:relative;display:inline-flex;align-items:center;justify-content:center;width:40px;height:40px;margin:0;padding:0;border:0;border-radius:50%;background:transparent;color:inherit;cursor:pointer}
.herald-inbox-button:hover{background:rgba(127,127,127,.15)}
.herald-inbox-button svg{width:22px;height:22px}
.herald-badge{position:absolute;top:2px;right:0;min-width:18px;height:18px;padding:0 5px;border-radius:9px;background:var(--herald-badge,#d1242f);color:#fff;font-size:11px;font-weight:600;line-height:18px;text-align:center}
.herald-inbox-panel{position:absolute;top:calc(100% + 6px);right:0;z-index:var(--h-z);width:min(360px,calc(100vw - 16px));max-height:min(480px,70vh);overflow:auto;background:var(--h-bg);color:var(--h-fg);border:1px solid var(--h-border);border-radius:var(--h-radius);box-shadow:var(--h-shadow);animation:herald-fade .15s ease-out}
.herald-inbox-header{margin:0;padding:12px 16px;font-size:1em;font-weight:600;border-bottom:1px solid var(--h-border)}
.herald-inbox-list{list-style:none;margin:0;padding:0}
.herald-inbox-item{margin:0;border-bottom:1px solid var(--h-border)}
.herald-inbox-open{display:flex;align-items:center;gap:8px;width:100%;margin:0;padding:10px 16px;font:inherit;color:inherit;text-align:left;background:none;border:0;cursor:pointer}
.herald-inbox-open:hover{background:rgba(127,127,127,.08)}
.herald-inbox-title{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.herald-unread .herald-inbox-title{font-weight:600}
.herald-dot{flex:none;width:8px;height:8px;border-radius:50%;background:var(--h-accent)}
.herald-time{flex:none;color:var(--h-muted);font-size:.8em}
.herald-inbox-detail{padding:0 16px 12px}
.herald-inbox-detail .herald-actions{margin-top:8px}
.herald-inbox-footer{display:flex;justify-content:center;padding:8px 16px}
.herald-inbox-note{margin:0;padding:16px;color:var(--h-muted)}
.herald-sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
@keyframes herald-in{from{opacity:0;transform:translateY(-6px)}}
@keyframes herald-fade{from{opacity:0}}
@media (prefers-reduced-motion:reduce){.herald-ui,.herald-ui *{animation:none!important;transition:none!important}}
`;

export function injectStyles(nonce?: string): void {
  if (document.getElementById("herald-styles")) return;
  const style = document.createElement("style");
  style.id = "herald-styles";
  if (nonce) style.nonce = nonce;
  style.textContent = CSS.trim().replace(/\n/g, "");
  document.head.appendChild(style);
}
