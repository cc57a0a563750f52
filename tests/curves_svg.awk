#!/usr/bin/awk -f
# curves_svg.awk: a line chart of several series as a static SVG file (no
# script, no external font), for the results scripts.
#
#   awk -v title="..." -v xlabel="..." -v ylabel="..." -f tests/curves_svg.awk DATA > out.svg
#
# DATA has one point per line, `SERIES X Y` (SERIES without spaces), series
# in the order they first appear, points of a series in increasing X. The
# axes span the data's X range and [ymin, ymax] of Y rounded out to a tenth
# of the range; each series gets a colour, a line and a legend entry.
BEGIN {
    W = 860; H = 520; L = 70; R = 210; T = 50; B = 55
    split("#1f6fb4 #e3721a #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf", color, " ")
    ns = 0; np = 0
    xmin = ymin = 1e300; xmax = ymax = -1e300
}
NF >= 3 && $2 + 0 == $2 && $3 + 0 == $3 {
    if (!($1 in sid)) { sid[$1] = ++ns; sname[ns] = $1 }
    s = sid[$1]; n = ++cnt[s]; px[s, n] = $2 + 0; py[s, n] = $3 + 0
    if ($2 < xmin) xmin = $2; if ($2 > xmax) xmax = $2
    if ($3 < ymin) ymin = $3; if ($3 > ymax) ymax = $3
    np++
}
function esc(t) { gsub(/&/, "\\&amp;", t); gsub(/</, "\\&lt;", t); gsub(/>/, "\\&gt;", t); gsub(/"/, "\\&quot;", t); return t }
function X(v) { return L + (W - L - R) * (xmax > xmin ? (v - xmin) / (xmax - xmin) : 0.5) }
function Y(v) { return H - B - (H - T - B) * (ylo < yhi ? (v - ylo) / (yhi - ylo) : 0.5) }
END {
    if (np == 0) { print "curves_svg.awk: no points" > "/dev/stderr"; exit 1 }
    pad = (ymax - ymin) / 10; if (pad == 0) pad = 1
    ylo = ymin - pad; yhi = ymax + pad
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
    printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
    printf "<text x=\"%d\" y=\"28\" font-size=\"15\">%s</text>\n", L, esc(title)
    # grid and y ticks: 5 intervals
    for (i = 0; i <= 5; i++) {
        v = ylo + (yhi - ylo) * i / 5
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, W - R, Y(v), Y(v)
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", L - 6, Y(v) + 4, v
    }
    for (i = 0; i <= 5; i++) {
        v = xmin + (xmax - xmin) * i / 5
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", X(v), H - B + 18, int(v + 0.5)
    }
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, W - R, H - B, H - B
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, L, T, H - B
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, H - 12, esc(xlabel)
    printf "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", (T + H - B) / 2, esc(ylabel)
    for (s = 1; s <= ns; s++) {
        c = color[(s - 1) % 10 + 1]
        pts = ""
        for (k = 1; k <= cnt[s]; k++) pts = pts sprintf("%.1f,%.1f ", X(px[s, k]), Y(py[s, k]))
        printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", c, pts
        ly = T + 10 + 20 * (s - 1)
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - R + 12, W - R + 36, ly, ly, c
        printf "<text x=\"%d\" y=\"%d\">%s</text>\n", W - R + 42, ly + 4, esc(sname[s])
    }
    print "</svg>"
}
