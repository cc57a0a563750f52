/* partition: spreads the samples of a pooled dataset over simulated clients
 * (iid, dir:ALPHA, pat:K, feat:D), then splits each client's share 75/25 into
 * train and test; see partition.h.
 *
 * Every scheme only decides an owner per sample; one common step then groups
 * the samples by owner, shuffles each client's share and sets its train
 * split. All randomness comes from rng.h seeded with the seed alone, so every
 * machine of a sharded simulation computes the same partition. The schemes
 * follow PFLlib's dataset_utils.py:
 *   pat:K  classes are dealt to clients round-robin, client c holding classes
 *          (c*K + j) mod n_classes for j < K, so every class is held by
 *          n_clients*K/n_classes clients (give or take one); each class's
 *          shuffled samples are cut into equal shares among its holders.
 *          PFLlib gives clients random-sized shares of a class; equal shares
 *          make the "K classes each" setting the only heterogeneity. When
 *          n_clients*K < n_classes, the classes nobody holds are left out.
 *   dir:A  per class, proportions ~ Dir(A) over the clients, with PFLlib's
 *          balancing (a client already holding n/n_clients samples gets no
 *          more), redrawn whole until every client has PARTITION_MIN_SAMPLES.
 *   feat:D the owners of iid, or of dir:A with feat:D+dir:A; the domain is a
 *          property of the client (partition_domain), applied to its images
 *          by the caller (dataset_apply_domain).
 *   draw:N has no owners (a sample may belong to many clients): client c,
 *          in order, draws N distinct samples by rejection against a bitmap
 *          of what it already holds, so the cost is O(N) per client, not
 *          O(n). Its draw is already shuffled, so only the train split is
 *          set. PFLlib has no such scheme; it exists for load tests.
 */
#include "common/data/partition.h"

#include "common/log.h"
#include "common/rng.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Labels are bytes, so there are at most this many classes. */
#define PART_MAX_CLASSES 256
/* dir:ALPHA redraws at most this many times before giving up. */
#define PART_DIR_ATTEMPTS 1000

/* Parses a whole decimal int in [lo, hi]; returns 0 or -EINVAL. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -EINVAL;
    *out = (int)v;
    return 0;
}

int partition_parse(const char *s, partition_spec *out, char *err)
{
    memset(out, 0, sizeof *out);
    out->domains = 1;
    if (!strcmp(s, "iid")) {
        out->kind = PART_IID;
        return 0;
    }
    if (!strncmp(s, "dir:", 4)) {
        char *end;
        errno = 0;
        double a = strtod(s + 4, &end);
        if (errno || end == s + 4 || *end || !isfinite(a) || a <= 0) {
            err_set(err, "partition '%s': dir:ALPHA needs a number ALPHA > 0, e.g. dir:0.1", s);
            return -EINVAL;
        }
        out->kind = PART_DIR;
        out->alpha = a;
        return 0;
    }
    if (!strncmp(s, "pat:", 4)) {
        if (parse_int(s + 4, 1, PART_MAX_CLASSES, &out->k)) {
            err_set(err, "partition '%s': pat:K needs K classes per client, 1 or more, e.g. pat:2", s);
            return -EINVAL;
        }
        out->kind = PART_PAT;
        return 0;
    }
    if (!strncmp(s, "feat:", 5)) {
        /* feat:D, or feat:D+dir:ALPHA for Dirichlet labels on top. */
        char d[16];
        const char *plus = strchr(s + 5, '+');
        const size_t len = plus ? (size_t)(plus - (s + 5)) : strlen(s + 5);
        char *end;
        if (len >= sizeof d) goto bad_feat;
        memcpy(d, s + 5, len);
        d[len] = 0;
        if (parse_int(d, 1, 4, &out->domains)) goto bad_feat;
        if (plus) {
            errno = 0;
            out->alpha = strncmp(plus, "+dir:", 5) ? NAN : strtod(plus + 5, &end);
            if (errno || !isfinite(out->alpha) || end == plus + 5 || *end || out->alpha <= 0)
                goto bad_feat;
        }
        out->kind = PART_FEAT;
        return 0;
    bad_feat:
        memset(out, 0, sizeof *out);
        out->domains = 1;
        err_set(err, "partition '%s': feat:D needs D image domains, 1..4, optionally with "
                "Dirichlet labels +dir:ALPHA (ALPHA > 0), e.g. feat:4 or feat:4+dir:0.3", s);
        return -EINVAL;
    }
    if (!strncmp(s, "draw:", 5)) {
        if (parse_int(s + 5, PARTITION_MIN_SAMPLES, INT_MAX, &out->draw)) {
            err_set(err, "partition '%s': draw:N needs N samples per client, %d or more, e.g. draw:20",
                    s, PARTITION_MIN_SAMPLES);
            return -EINVAL;
        }
        out->kind = PART_DRAW;
        return 0;
    }
    err_set(err, "partition '%s' unknown: use iid, dir:ALPHA, pat:K, feat:D, feat:D+dir:ALPHA "
            "or draw:N", s);
    return -EINVAL;
}

/* Sets owner[i] for iid and feat: a shuffled order cut into n_clients shares
 * whose sizes differ by at most one. */
static void make_iid(rng *r, int n, int n_clients, int *order, int *owner)
{
    for (int i = 0; i < n; i++) order[i] = i;
    rng_shuffle_int(r, order, n);
    for (int c = 0; c < n_clients; c++) {
        int lo = (int)((int64_t)n * c / n_clients), hi = (int)((int64_t)n * (c + 1) / n_clients);
        for (int i = lo; i < hi; i++) owner[order[i]] = c;
    }
}

/* Sets owner[i] for pat:K (scheme in the file comment); class k's samples
 * are cls[cstart[k] .. cstart[k+1]), shuffled here. */
static void make_pat(rng *r, int k_per, int n_classes, int n_clients, const int *cstart,
                     int *cls, int *holders, int *owner)
{
    for (int k = 0; k < n_classes; k++) {
        int nh = 0;
        for (int c = 0; c < n_clients; c++) {
            int first = (int)((int64_t)c * k_per % n_classes);
            /* c holds k when k is among the K classes from first on, mod n_classes. */
            if ((k - first + n_classes) % n_classes < k_per) holders[nh++] = c;
        }
        int *s = cls + cstart[k], m = cstart[k + 1] - cstart[k];
        rng_shuffle_int(r, s, m);
        for (int i = 0; i < m; i++) owner[s[i]] = nh ? holders[(int64_t)i * nh / m] : -1;
    }
}

/* One draw of dir:ALPHA (scheme in the file comment): sets owner[i] and
 * size[c]. Returns 1 when every client got PARTITION_MIN_SAMPLES, else 0. */
static int make_dir_once(rng *r, double alpha, int n, int n_classes, int n_clients,
                         const int *cstart, int *cls, double *prop, int *size, int *owner)
{
    memset(size, 0, (size_t)n_clients * sizeof *size);
    for (int k = 0; k < n_classes; k++) {
        int *s = cls + cstart[k], m = cstart[k + 1] - cstart[k];
        if (!m) continue;
        rng_shuffle_int(r, s, m);
        double sum = 0;
        for (int c = 0; c < n_clients; c++) {
            double g = rng_gamma(r, alpha);
            prop[c] = (int64_t)size[c] * n_clients < n ? g : 0.0;
            sum += prop[c];
        }
        /* Tiny alphas can underflow every draw to zero: a failed draw. */
        if (!(sum > 0)) return 0;
        double cum = 0;
        int lo = 0;
        for (int c = 0; c < n_clients; c++) {
            cum += prop[c];
            int hi = c == n_clients - 1 ? m : (int)(cum / sum * m);
            if (hi > m) hi = m;
            if (hi < lo) hi = lo;
            for (int i = lo; i < hi; i++) owner[s[i]] = c;
            size[c] += hi - lo;
            lo = hi;
        }
    }
    for (int c = 0; c < n_clients; c++)
        if (size[c] < PARTITION_MIN_SAMPLES) return 0;
    return 1;
}

/* dir:ALPHA's owners: draws until every client has PARTITION_MIN_SAMPLES, at
 * most PART_DIR_ATTEMPTS times. Returns 0 or -EINVAL with err. */
static int make_dir(rng *r, double alpha, int n, int n_classes, int n_clients, const int *cstart,
                    int *cls, double *prop, int *size, int *owner, char *err)
{
    for (int a = 0; a < PART_DIR_ATTEMPTS; a++)
        if (make_dir_once(r, alpha, n, n_classes, n_clients, cstart, cls, prop, size, owner)) return 0;
    err_set(err, "dir:%g could not give each of %d clients %d samples in %d draws: "
            "use a larger ALPHA, fewer clients or more samples",
            alpha, n_clients, PARTITION_MIN_SAMPLES, PART_DIR_ATTEMPTS);
    return -EINVAL;
}

/* Groups samples by owner into out (owner -1: left out), shuffles each
 * client's share with r and sets its 75% train split. */
static int group_by_owner(rng *r, const int *owner, int n, int n_clients, partition *out, char *err)
{
    out->start = calloc((size_t)n_clients + 1, sizeof *out->start);
    out->n_train = calloc((size_t)n_clients, sizeof *out->n_train);
    out->idx = malloc((size_t)n * sizeof *out->idx);
    if (!out->start || !out->n_train || !out->idx) {
        err_set(err, "out of memory for a partition of %d samples", n);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++)
        if (owner[i] >= 0) out->start[owner[i] + 1]++;
    for (int c = 0; c < n_clients; c++) out->start[c + 1] += out->start[c];
    /* start[c] is used as a fill cursor, then restored from start[c+1]. */
    for (int i = 0; i < n; i++)
        if (owner[i] >= 0) out->idx[out->start[owner[i]]++] = i;
    for (int c = n_clients; c > 0; c--) out->start[c] = out->start[c - 1];
    out->start[0] = 0;
    for (int c = 0; c < n_clients; c++) {
        int m = out->start[c + 1] - out->start[c];
        if (m < PARTITION_MIN_SAMPLES) {
            err_set(err, "client %d would get %d samples, fewer than %d: use fewer clients "
                    "or another partition", c, m, PARTITION_MIN_SAMPLES);
            return -EINVAL;
        }
        rng_shuffle_int(r, out->idx + out->start[c], m);
        out->n_train[c] = (int)((int64_t)m * 3 / 4);
    }
    return 0;
}

/* draw:N (scheme in the file comment) straight into out. */
static int make_draw(rng *r, int n, int per, int n_clients, partition *out, char *err)
{
    const size_t total = (size_t)n_clients * (size_t)per;
    uint8_t *held = calloc(((size_t)n + 7) / 8, 1);
    out->start = malloc(((size_t)n_clients + 1) * sizeof *out->start);
    out->n_train = malloc((size_t)n_clients * sizeof *out->n_train);
    out->idx = malloc(total * sizeof *out->idx);
    if (!held || !out->start || !out->n_train || !out->idx) {
        free(held);
        err_set(err, "out of memory for draw:%d over %d clients", per, n_clients);
        return -ENOMEM;
    }
    for (int c = 0; c < n_clients; c++) {
        int *mine = out->idx + (size_t)c * per;
        out->start[c] = (int)((size_t)c * per);
        out->n_train[c] = (int)((int64_t)per * 3 / 4);
        for (int j = 0; j < per; j++) {
            int i;
            do i = (int)rng_below(r, (uint64_t)n);
            while (held[i / 8] & (1u << (i % 8)));
            held[i / 8] |= (uint8_t)(1u << (i % 8));
            mine[j] = i;
        }
        for (int j = 0; j < per; j++) held[mine[j] / 8] = 0;
    }
    out->start[n_clients] = (int)total;
    free(held);
    return 0;
}

int partition_make(const partition_spec *spec, const uint8_t *y, int n, int n_classes,
                   int n_clients, uint64_t seed, partition *out, char *err)
{
    int *owner = NULL, *cls = NULL, *cstart = NULL, *size = NULL, *holders = NULL;
    double *prop = NULL;
    int rc = -EINVAL;
    memset(out, 0, sizeof *out);
    out->domains = 1;

    if (n_clients < 1 || n_clients > PARTITION_MAX_CLIENTS) {
        err_set(err, "%d clients: the number of clients must be 1..%d", n_clients, PARTITION_MAX_CLIENTS);
        goto out;
    }
    if (n_classes < 1 || n_classes > PART_MAX_CLASSES) {
        err_set(err, "%d classes: the number of classes must be 1..%d", n_classes, PART_MAX_CLASSES);
        goto out;
    }
    if (spec->kind == PART_DRAW) {
        if (spec->draw < PARTITION_MIN_SAMPLES || spec->draw > n) {
            err_set(err, "draw:%d: N must be %d..%d (the samples there are)", spec->draw,
                    PARTITION_MIN_SAMPLES, n);
            goto out;
        }
        if ((int64_t)spec->draw * n_clients > PARTITION_MAX_DRAWN) {
            err_set(err, "draw:%d over %d clients is %lld samples, more than the %d a partition "
                    "holds: use fewer clients or a smaller N", spec->draw, n_clients,
                    (long long)spec->draw * n_clients, PARTITION_MAX_DRAWN);
            goto out;
        }
    } else if (n < 0 || n / PARTITION_MIN_SAMPLES < n_clients) {
        err_set(err, "%d samples are too few for %d clients of at least %d samples each",
                n, n_clients, PARTITION_MIN_SAMPLES);
        goto out;
    }
    if (spec->kind == PART_PAT && (spec->k < 1 || spec->k > n_classes)) {
        err_set(err, "pat:%d: K must be 1..%d (the number of classes)", spec->k, n_classes);
        goto out;
    }
    if ((spec->kind == PART_DIR || (spec->kind == PART_FEAT && spec->alpha != 0)) &&
        !(spec->alpha > 0 && isfinite(spec->alpha))) {
        err_set(err, "dir:%g: ALPHA must be a number > 0", spec->alpha);
        goto out;
    }
    if (spec->kind == PART_FEAT && (spec->domains < 1 || spec->domains > 4)) {
        err_set(err, "feat:%d: D must be 1..4", spec->domains);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (y[i] >= n_classes) {
            err_set(err, "sample %d has label %d, not a class 0..%d", i, y[i], n_classes - 1);
            goto out;
        }
    }

    rc = -ENOMEM;
    owner = malloc((size_t)n * sizeof *owner);
    cls = malloc((size_t)n * sizeof *cls);
    cstart = calloc((size_t)n_classes + 1, sizeof *cstart);
    size = malloc((size_t)n_clients * sizeof *size);
    holders = malloc((size_t)n_clients * sizeof *holders);
    prop = malloc((size_t)n_clients * sizeof *prop);
    if (!owner || !cls || !cstart || !size || !holders || !prop) {
        err_set(err, "out of memory for a partition of %d samples", n);
        goto out;
    }
    /* Sample indices grouped by class, in index order: class k is
     * cls[cstart[k] .. cstart[k+1]). */
    for (int i = 0; i < n; i++) cstart[y[i] + 1]++;
    for (int k = 0; k < n_classes; k++) cstart[k + 1] += cstart[k];
    for (int i = 0; i < n; i++) cls[cstart[y[i]]++] = i;
    for (int k = n_classes; k > 0; k--) cstart[k] = cstart[k - 1];
    cstart[0] = 0;

    rng r;
    rng_seed(&r, seed);
    out->n_clients = n_clients;
    if (spec->kind == PART_DRAW) {
        rc = make_draw(&r, n, spec->draw, n_clients, out, err);
        goto out;
    }
    switch (spec->kind) {
    case PART_FEAT:
        /* Domains are per client; the labels are IID unless +dir:ALPHA. */
        if (spec->alpha == 0) {
            make_iid(&r, n, n_clients, cls, owner);
            break;
        }
        /* fall through */
    case PART_DIR:
        rc = make_dir(&r, spec->alpha, n, n_classes, n_clients, cstart, cls, prop, size, owner, err);
        if (rc) goto out;
        break;
    case PART_IID:
        make_iid(&r, n, n_clients, cls, owner);
        break;
    case PART_PAT:
        make_pat(&r, spec->k, n_classes, n_clients, cstart, cls, holders, owner);
        break;
    default:
        rc = -EINVAL;
        err_set(err, "unknown partition kind %d", spec->kind);
        goto out;
    }
    if (spec->kind == PART_FEAT) out->domains = spec->domains;
    rc = group_by_owner(&r, owner, n, n_clients, out, err);
out:
    free(owner);
    free(cls);
    free(cstart);
    free(size);
    free(holders);
    free(prop);
    if (rc) partition_free(out);
    return rc;
}

void partition_free(partition *p)
{
    if (!p) return;
    free(p->start);
    free(p->n_train);
    free(p->idx);
    memset(p, 0, sizeof *p);
}
