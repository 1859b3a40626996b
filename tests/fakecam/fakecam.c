/*
 * An emulated UVC camera for camd's tests, preloaded (LD_PRELOAD) into the processes under test.
 *
 * It makes a capture node (default /dev/video0) and a metadata-only node (default /dev/video1)
 * appear to open(), stat(), access() and readdir("/dev"), and answers the V4L2 ioctls that
 * OpenCV's V4L2 backend and camd's own probe issue. The fake device's fd is a real timerfd
 * ticking at the camera's frame rate, so select/poll work unchanged; the driver's buffers live
 * in a memfd that mmap() of the fake fd maps.
 *
 * Configuration (environment; the library does nothing without FAKECAM_DIR):
 *   FAKECAM_DIR       directory with the frames and the control files below
 *   FAKECAM_FORMATS   offered pixel formats, in order: "MJPG,YUYV" (default)
 *   FAKECAM_SIZES     offered sizes: "640x480" (default), e.g. "640x480,320x240"
 *   FAKECAM_FPS       frame rate (default 30)
 *   FAKECAM_DARK      dark frames served after every STREAMON (default 0)
 *   FAKECAM_CONTROLS  controls offered (default all): brightness, power_line_frequency,
 *                     auto_exposure, exposure_time_absolute, white_balance_automatic,
 *                     focus_absolute, focus_automatic_continuous
 *   FAKECAM_CAPTURE   path of the capture node (default /dev/video0)
 *   FAKECAM_META      path of the metadata node (default /dev/video1; empty: none)
 *
 * Frames: $FAKECAM_DIR/<W>x<H>/ holds *.jpg (served byte for byte in MJPG) and *.yuyv (raw
 * YUYV 4:2:2, served in YUYV), in name order and in a loop; files named dark* are the dark
 * frames served first after STREAMON.
 *
 * Runtime commands: $FAKECAM_DIR/state holds "<word> <plug>", read on every call:
 *   plugged   the camera works;
 *   unplugged the nodes vanish (open/stat: ENOENT) and open fds answer ENODEV;
 *   hang      DQBUF never becomes ready (select times out);
 *   wedged    "wedged <plug> <ms>": streams started before <ms> (Unix time, milliseconds) hang,
 *             a stream started after works (a camera that a reopen revives);
 * <plug> counts replugs: an fd opened under another count is dead (ENODEV), as after a real
 * replug. Another process streaming is emulated by a flock on $FAKECAM_DIR/busy.lock: whoever
 * holds it makes S_FMT, REQBUFS and STREAMON answer EBUSY.
 *
 * Every S_FMT, STREAMON, STREAMOFF and S_CTRL that reaches the device is appended to
 * $FAKECAM_DIR/log, one line each, so a test can see what the driver was told.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAKES 64
#define MAX_BUFFERS 32
#define MAX_FORMATS 4
#define MAX_SIZES 8
#define MAX_FRAMES 256
#define CAPTURE 0
#define META 1

/* ---- the real libc functions ---- */

#define REAL(name) static __typeof__(name) *real_##name
REAL(open);
REAL(open64);
REAL(openat);
REAL(openat64);
REAL(close);
REAL(ioctl);
REAL(mmap);
REAL(mmap64);
REAL(stat);
REAL(stat64);
REAL(lstat);
REAL(lstat64);
REAL(fstatat);
REAL(fstatat64);
REAL(access);
REAL(faccessat);
REAL(opendir);
REAL(readdir);
REAL(readdir64);
REAL(closedir);
REAL(realpath);
REAL(statx);
static int (*real___xstat)(int, const char *, struct stat *);
static int (*real___xstat64)(int, const char *, struct stat64 *);
static int (*real___lxstat)(int, const char *, struct stat *);
static int (*real___lxstat64)(int, const char *, struct stat64 *);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);

/* ---- configuration ---- */

struct control {
    const char *name;
    uint32_t id;
    uint32_t type;
    int32_t minimum, maximum, step, default_value;
    const char *menu[4]; /* NULL: that menu index is not offered */
    int offered;
};

static struct control controls[] = {
    {"Brightness", V4L2_CID_BRIGHTNESS, V4L2_CTRL_TYPE_INTEGER, -64, 64, 1, 0, {0}, 1},
    {"White Balance, Automatic", V4L2_CID_AUTO_WHITE_BALANCE, V4L2_CTRL_TYPE_BOOLEAN, 0, 1, 1, 1, {0}, 1},
    {"Power Line Frequency", V4L2_CID_POWER_LINE_FREQUENCY, V4L2_CTRL_TYPE_MENU, 0, 2, 1, 1,
     {"Disabled", "50 Hz", "60 Hz", NULL}, 1},
    {"Auto Exposure", V4L2_CID_EXPOSURE_AUTO, V4L2_CTRL_TYPE_MENU, 0, 3, 1, 3,
     {NULL, "Manual Mode", NULL, "Aperture Priority Mode"}, 1},
    {"Exposure Time, Absolute", V4L2_CID_EXPOSURE_ABSOLUTE, V4L2_CTRL_TYPE_INTEGER, 3, 2047, 1, 250, {0}, 1},
    {"Focus, Absolute", V4L2_CID_FOCUS_ABSOLUTE, V4L2_CTRL_TYPE_INTEGER, 0, 250, 5, 0, {0}, 1},
    {"Focus, Automatic Continuous", V4L2_CID_FOCUS_AUTO, V4L2_CTRL_TYPE_BOOLEAN, 0, 1, 1, 1, {0}, 1},
};
#define N_CONTROLS ((int)(sizeof(controls) / sizeof(controls[0])))
static const char *control_keys[N_CONTROLS] = {
    "brightness", "white_balance_automatic", "power_line_frequency", "auto_exposure",
    "exposure_time_absolute", "focus_absolute", "focus_automatic_continuous",
};

static int enabled;
static char dir[1024];
static uint32_t formats[MAX_FORMATS];
static int n_formats;
static uint32_t widths[MAX_SIZES], heights[MAX_SIZES];
static int n_sizes;
static int fps = 30;
static int dark_frames;
static char node_path[2][256];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The device's control values: they live as long as the device is plugged (reset on replug). */
static int32_t values[N_CONTROLS];
static int values_plug = -1;

struct fake {
    int fd;
    int node;
    int plug;
    int dead;
    uint32_t width, height, pixelformat;
    int memfd;
    unsigned char *memory;
    size_t buffer_size, buffer_stride;
    unsigned count;
    int queued[MAX_BUFFERS];
    unsigned queue[MAX_BUFFERS], queue_len;
    int streaming;
    long long stream_started; /* ms, Unix time */
    unsigned sequence;
    unsigned served;
    int lockfd;
};
static struct fake *fakes[MAX_FAKES];

struct listing {
    DIR *dirp;
    int next;
    struct dirent entry;
    struct dirent64 entry64;
};
static struct listing listings[16];

static void load_real(void) {
#define LOAD(name) real_##name = dlsym(RTLD_NEXT, #name)
    LOAD(open);
    LOAD(open64);
    LOAD(openat);
    LOAD(openat64);
    LOAD(close);
    LOAD(ioctl);
    LOAD(mmap);
    LOAD(mmap64);
    LOAD(stat);
    LOAD(stat64);
    LOAD(lstat);
    LOAD(lstat64);
    LOAD(fstatat);
    LOAD(fstatat64);
    LOAD(access);
    LOAD(faccessat);
    LOAD(opendir);
    LOAD(readdir);
    LOAD(readdir64);
    LOAD(closedir);
    LOAD(realpath);
    LOAD(statx);
    /* glibc 2.33 kept these only as compat symbols, which plain dlsym cannot see. */
    real___xstat = dlvsym(RTLD_NEXT, "__xstat", "GLIBC_2.2.5");
    real___xstat64 = dlvsym(RTLD_NEXT, "__xstat64", "GLIBC_2.2.5");
    real___lxstat = dlvsym(RTLD_NEXT, "__lxstat", "GLIBC_2.2.5");
    real___lxstat64 = dlvsym(RTLD_NEXT, "__lxstat64", "GLIBC_2.2.5");
    LOAD(__open_2);
    LOAD(__open64_2);
#undef LOAD
}

static uint32_t fourcc_of(const char *text) {
    return v4l2_fourcc(text[0], text[1], text[2], text[3]);
}

static void setup(void) {
    load_real();
    const char *value = getenv("FAKECAM_DIR");
    if (value == NULL || *value == '\0')
        return;
    snprintf(dir, sizeof(dir), "%s", value);
    value = getenv("FAKECAM_FORMATS");
    char list[256];
    snprintf(list, sizeof(list), "%s", value && *value ? value : "MJPG,YUYV");
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item && n_formats < MAX_FORMATS;
         item = strtok_r(NULL, ",", &save))
        if (strlen(item) == 4)
            formats[n_formats++] = fourcc_of(item);
    value = getenv("FAKECAM_SIZES");
    snprintf(list, sizeof(list), "%s", value && *value ? value : "640x480");
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item && n_sizes < MAX_SIZES;
         item = strtok_r(NULL, ",", &save))
        if (sscanf(item, "%ux%u", &widths[n_sizes], &heights[n_sizes]) == 2)
            n_sizes++;
    if ((value = getenv("FAKECAM_FPS")) && atoi(value) > 0)
        fps = atoi(value);
    if ((value = getenv("FAKECAM_DARK")))
        dark_frames = atoi(value);
    if ((value = getenv("FAKECAM_CONTROLS"))) {
        for (int i = 0; i < N_CONTROLS; i++) {
            char padded[512];
            char key[64];
            snprintf(padded, sizeof(padded), ",%s,", value);
            snprintf(key, sizeof(key), ",%s,", control_keys[i]);
            controls[i].offered = strstr(padded, key) != NULL;
        }
    }
    value = getenv("FAKECAM_CAPTURE");
    snprintf(node_path[CAPTURE], sizeof(node_path[CAPTURE]), "%s", value && *value ? value : "/dev/video0");
    value = getenv("FAKECAM_META");
    snprintf(node_path[META], sizeof(node_path[META]), "%s", value ? value : "/dev/video1");
    enabled = n_formats > 0 && n_sizes > 0;
}

/* Other libraries' constructors may call in before ours has run: every entry point loads first. */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    pthread_once(&once, setup);
}

__attribute__((constructor)) static void constructor(void) {
    init();
}

/* ---- the runtime state the test steers ---- */

enum { PLUGGED, UNPLUGGED, HUNG, WEDGED };
static long long wedged_since; /* WEDGED: streams started before this (ms) hang */

static int read_state_file(int *plug);

/* The state word (and the plug count), leaving errno as it was. */
static int read_state(int *plug) {
    int saved = errno;
    int state = read_state_file(plug);
    errno = saved;
    return state;
}

static int read_state_file(int *plug) {
    char path[1100], text[64] = "";
    snprintf(path, sizeof(path), "%s/state", dir);
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    *plug = 0;
    if (fd < 0)
        return PLUGGED;
    ssize_t got = read(fd, text, sizeof(text) - 1);
    real_close(fd);
    if (got <= 0)
        return PLUGGED;
    text[got] = '\0';
    char word[32] = "";
    long long since = 0;
    sscanf(text, "%31s %d %lld", word, plug, &since);
    if (strcmp(word, "unplugged") == 0)
        return UNPLUGGED;
    if (strcmp(word, "hang") == 0)
        return HUNG;
    if (strcmp(word, "wedged") == 0) {
        wedged_since = since;
        return WEDGED;
    }
    return PLUGGED;
}

static void event(const char *format, ...) {
    char path[1100], line[256];
    snprintf(path, sizeof(path), "%s/log", dir);
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof(line) - 1, format, args);
    va_end(args);
    if (length < 0)
        return;
    if (length > (int)sizeof(line) - 2)
        length = sizeof(line) - 2;
    line[length++] = '\n';
    int fd = real_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t ignored = write(fd, line, length);
        (void)ignored;
        real_close(fd);
    }
}

/* Which fake node a path names (-1: none). */
static int node_of(const char *path) {
    if (!enabled || path == NULL)
        return -1;
    for (int node = CAPTURE; node <= META; node++)
        if (node_path[node][0] && strcmp(path, node_path[node]) == 0)
            return node;
    return -1;
}

/* -1 with errno when the node is not there (unplugged). */
static int present(void) {
    int plug;
    if (read_state(&plug) == UNPLUGGED) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

static struct fake *fake_of(int fd) {
    if (!enabled || fd < 0)
        return NULL;
    for (int i = 0; i < MAX_FAKES; i++)
        if (fakes[i] && fakes[i]->fd == fd)
            return fakes[i];
    return NULL;
}

/* ---- opening and closing ---- */

static int fake_open(int node) {
    if (present() < 0)
        return -1;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -1;
    struct fake *fake = calloc(1, sizeof(*fake));
    if (fake == NULL) {
        real_close(fd);
        errno = ENOMEM;
        return -1;
    }
    fake->fd = fd;
    fake->node = node;
    read_state(&fake->plug);
    fake->width = widths[0];
    fake->height = heights[0];
    fake->pixelformat = formats[0];
    fake->memfd = -1;
    fake->lockfd = -1;
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < MAX_FAKES && slot < 0; i++)
        if (fakes[i] == NULL)
            slot = i;
    if (slot >= 0)
        fakes[slot] = fake;
    if (values_plug != fake->plug) {
        for (int i = 0; i < N_CONTROLS; i++)
            values[i] = controls[i].default_value;
        values_plug = fake->plug;
    }
    pthread_mutex_unlock(&lock);
    if (slot < 0) {
        free(fake);
        real_close(fd);
        errno = EMFILE;
        return -1;
    }
    event("open %s", node_path[node]);
    return fd;
}

static void free_buffers(struct fake *fake) {
    if (fake->memory)
        munmap(fake->memory, fake->buffer_stride * fake->count);
    if (fake->memfd >= 0)
        real_close(fake->memfd);
    fake->memory = NULL;
    fake->memfd = -1;
    fake->count = 0;
    fake->queue_len = 0;
    memset(fake->queued, 0, sizeof(fake->queued));
}

static void release_lock(struct fake *fake) {
    if (fake->lockfd >= 0) {
        real_close(fake->lockfd); /* closing the description drops its flock */
        fake->lockfd = -1;
    }
}

/* Take the device for streaming; 0, or -1 with EBUSY when another process streams. */
static int take_lock(struct fake *fake) {
    if (fake->lockfd >= 0)
        return 0;
    char path[1100];
    snprintf(path, sizeof(path), "%s/busy.lock", dir);
    int fd = real_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        real_close(fd);
        errno = EBUSY;
        return -1;
    }
    fake->lockfd = fd;
    return 0;
}

static void forget(int fd) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_FAKES; i++) {
        if (fakes[i] && fakes[i]->fd == fd) {
            struct fake *fake = fakes[i];
            fakes[i] = NULL;
            free_buffers(fake);
            release_lock(fake);
            free(fake);
        }
    }
    pthread_mutex_unlock(&lock);
}

/* ---- frames ---- */

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* The path of the frame to serve as number `served` after STREAMON, or 0 when there is none. */
static int frame_path(struct fake *fake, unsigned served, char *out, size_t size) {
    char folder[1200];
    snprintf(folder, sizeof(folder), "%s/%ux%u", dir, fake->width, fake->height);
    const char *suffix = fake->pixelformat == V4L2_PIX_FMT_YUYV ? ".yuyv" : ".jpg";
    struct dirent **names = NULL;
    int n = scandir(folder, &names, NULL, alphasort);
    if (n < 0)
        return 0;
    char *dark[MAX_FRAMES], *light[MAX_FRAMES];
    int n_dark = 0, n_light = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (!has_suffix(name, suffix))
            continue;
        if (strncmp(name, "dark", 4) == 0) {
            if (n_dark < MAX_FRAMES)
                dark[n_dark++] = names[i]->d_name;
        } else if (n_light < MAX_FRAMES) {
            light[n_light++] = names[i]->d_name;
        }
    }
    const char *chosen = NULL;
    if (served < (unsigned)dark_frames && n_dark > 0)
        chosen = dark[served % n_dark];
    else if (n_light > 0)
        chosen = light[(served - (served < (unsigned)dark_frames ? 0 : dark_frames)) % n_light];
    if (chosen)
        snprintf(out, size, "%s/%s", folder, chosen);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return chosen != NULL;
}

static size_t image_size(struct fake *fake) {
    return (size_t)fake->width * fake->height * 2;
}

static ssize_t fill(struct fake *fake, unsigned index) {
    char path[1400];
    unsigned char *target = fake->memory + (size_t)index * fake->buffer_stride;
    if (!frame_path(fake, fake->served, path, sizeof(path)))
        return 0;
    fake->served++;
    int fd = real_open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t total = 0, got;
    while ((size_t)total < fake->buffer_size &&
           (got = read(fd, target + total, fake->buffer_size - total)) > 0)
        total += got;
    real_close(fd);
    return total;
}

/* ---- ioctls ---- */

static int fail(int error) {
    errno = error;
    return -1;
}

static int control_index(uint32_t id) {
    for (int i = 0; i < N_CONTROLS; i++)
        if (controls[i].offered && controls[i].id == id)
            return i;
    return -1;
}

static int inactive(int index) {
    uint32_t id = controls[index].id;
    int i;
    if (id == V4L2_CID_EXPOSURE_ABSOLUTE && (i = control_index(V4L2_CID_EXPOSURE_AUTO)) >= 0)
        return values[i] != V4L2_EXPOSURE_MANUAL;
    if (id == V4L2_CID_FOCUS_ABSOLUTE && (i = control_index(V4L2_CID_FOCUS_AUTO)) >= 0)
        return values[i] != 0;
    return 0;
}

static int query_control(struct v4l2_queryctrl *query) {
    int index = -1;
    if (query->id & V4L2_CTRL_FLAG_NEXT_CTRL) {
        uint32_t after = query->id & ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
        for (int i = 0; i < N_CONTROLS; i++)
            if (controls[i].offered && controls[i].id > after && (index < 0 || controls[i].id < controls[index].id))
                index = i;
    } else {
        index = control_index(query->id);
    }
    if (index < 0)
        return fail(EINVAL);
    struct control *control = &controls[index];
    memset(query, 0, sizeof(*query));
    query->id = control->id;
    query->type = control->type;
    snprintf((char *)query->name, sizeof(query->name), "%s", control->name);
    query->minimum = control->minimum;
    query->maximum = control->maximum;
    query->step = control->step;
    query->default_value = control->default_value;
    if (inactive(index))
        query->flags |= V4L2_CTRL_FLAG_INACTIVE;
    return 0;
}

static int set_control(struct v4l2_control *control) {
    int index = control_index(control->id);
    if (index < 0)
        return fail(EINVAL);
    struct control *info = &controls[index];
    if (control->value < info->minimum || control->value > info->maximum)
        return fail(ERANGE);
    if (info->type == V4L2_CTRL_TYPE_MENU && info->menu[control->value] == NULL)
        return fail(EINVAL);
    if (inactive(index))
        return fail(EACCES);
    values[index] = control->value;
    event("s_ctrl %s %d", control_keys[index], control->value);
    return 0;
}

/* The offered size closest to what was asked, the way uvcvideo picks it. */
static void nearest_size(uint32_t want_w, uint32_t want_h, uint32_t *w, uint32_t *h) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < n_sizes; i++) {
        uint64_t overlap = (uint64_t)(widths[i] < want_w ? widths[i] : want_w) *
                           (heights[i] < want_h ? heights[i] : want_h);
        uint64_t distance = (uint64_t)widths[i] * heights[i] + (uint64_t)want_w * want_h - 2 * overlap;
        if (distance < best) {
            best = distance;
            *w = widths[i];
            *h = heights[i];
        }
    }
}

static int offers(uint32_t pixelformat) {
    for (int i = 0; i < n_formats; i++)
        if (formats[i] == pixelformat)
            return 1;
    return 0;
}

static int offers_size(uint32_t w, uint32_t h) {
    for (int i = 0; i < n_sizes; i++)
        if (widths[i] == w && heights[i] == h)
            return 1;
    return 0;
}

static void describe_format(struct fake *fake, struct v4l2_format *format) {
    memset(&format->fmt, 0, sizeof(format->fmt));
    struct v4l2_pix_format *pix = &format->fmt.pix;
    pix->width = fake->width;
    pix->height = fake->height;
    pix->pixelformat = fake->pixelformat;
    pix->field = V4L2_FIELD_NONE;
    pix->bytesperline = fake->pixelformat == V4L2_PIX_FMT_YUYV ? fake->width * 2 : 0;
    pix->sizeimage = image_size(fake);
    pix->colorspace = V4L2_COLORSPACE_SRGB;
}

static void fourcc_text(uint32_t code, char *out) {
    for (int i = 0; i < 4; i++)
        out[i] = (char)((code >> (8 * i)) & 0xFF);
    out[4] = '\0';
}

static int arm(struct fake *fake, int on) {
    struct itimerspec spec = {0};
    if (on) {
        long period = 1000000000L / fps;
        spec.it_interval.tv_nsec = period;
        spec.it_value.tv_nsec = period;
    }
    return timerfd_settime(fake->fd, 0, &spec, NULL);
}

static int meta_ioctl(struct fake *fake, unsigned long request, void *arg) {
    (void)fake;
    if (request == VIDIOC_ENUM_FMT) {
        struct v4l2_fmtdesc *desc = arg;
        if (desc->type != V4L2_BUF_TYPE_META_CAPTURE || desc->index != 0)
            return fail(EINVAL);
        desc->pixelformat = V4L2_META_FMT_UVC;
        desc->flags = 0;
        snprintf((char *)desc->description, sizeof(desc->description), "UVC Payload Header Metadata");
        return 0;
    }
    if (request == VIDIOC_G_FMT || request == VIDIOC_S_FMT || request == VIDIOC_TRY_FMT) {
        struct v4l2_format *format = arg;
        if (format->type != V4L2_BUF_TYPE_META_CAPTURE)
            return fail(EINVAL);
        format->fmt.meta.dataformat = V4L2_META_FMT_UVC;
        format->fmt.meta.buffersize = 10240;
        return 0;
    }
    if (request == VIDIOC_REQBUFS || request == VIDIOC_STREAMON || request == VIDIOC_STREAMOFF ||
        request == VIDIOC_QUERYBUF || request == VIDIOC_QBUF || request == VIDIOC_DQBUF)
        return fail(EINVAL);
    return fail(ENOTTY);
}

static int capture_ioctl(struct fake *fake, unsigned long request, void *arg, int state) {
    switch (request) {
    case VIDIOC_G_INPUT:
        *(int *)arg = 0;
        return 0;
    case VIDIOC_S_INPUT:
        return *(int *)arg == 0 ? 0 : fail(EINVAL);
    case VIDIOC_ENUMINPUT: {
        struct v4l2_input *input = arg;
        if (input->index != 0)
            return fail(EINVAL);
        memset(input, 0, sizeof(*input));
        snprintf((char *)input->name, sizeof(input->name), "Camera 1");
        input->type = V4L2_INPUT_TYPE_CAMERA;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *desc = arg;
        if (desc->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || desc->index >= (unsigned)n_formats)
            return fail(EINVAL);
        uint32_t code = formats[desc->index];
        desc->pixelformat = code;
        desc->flags = code == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
        snprintf((char *)desc->description, sizeof(desc->description), "%s",
                 code == V4L2_PIX_FMT_MJPEG ? "Motion-JPEG" : code == V4L2_PIX_FMT_YUYV ? "YUYV 4:2:2" : "Other");
        return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *size = arg;
        if (!offers(size->pixel_format) || size->index >= (unsigned)n_sizes)
            return fail(EINVAL);
        size->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        size->discrete.width = widths[size->index];
        size->discrete.height = heights[size->index];
        return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *interval = arg;
        if (!offers(interval->pixel_format) || !offers_size(interval->width, interval->height) || interval->index != 0)
            return fail(EINVAL);
        interval->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        interval->discrete.numerator = 1;
        interval->discrete.denominator = fps;
        return 0;
    }
    case VIDIOC_G_FMT: {
        struct v4l2_format *format = arg;
        if (format->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        describe_format(fake, format);
        return 0;
    }
    case VIDIOC_TRY_FMT:
    case VIDIOC_S_FMT: {
        struct v4l2_format *format = arg;
        if (format->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        if (request == VIDIOC_S_FMT && (fake->streaming || fake->count || take_lock(fake) < 0))
            return fail(EBUSY);
        struct fake chosen = *fake;
        chosen.pixelformat = offers(format->fmt.pix.pixelformat) ? format->fmt.pix.pixelformat : formats[0];
        nearest_size(format->fmt.pix.width, format->fmt.pix.height, &chosen.width, &chosen.height);
        describe_format(&chosen, format);
        if (request == VIDIOC_S_FMT) {
            fake->pixelformat = chosen.pixelformat;
            fake->width = chosen.width;
            fake->height = chosen.height;
            char code[5];
            fourcc_text(fake->pixelformat, code);
            event("s_fmt %ux%u %s", fake->width, fake->height, code);
        }
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *parm = arg;
        if (parm->type != V4L2_BUF_TYPE_VIDEO_CAPTURE)
            return fail(EINVAL);
        memset(&parm->parm, 0, sizeof(parm->parm));
        parm->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        parm->parm.capture.timeperframe.numerator = 1;
        parm->parm.capture.timeperframe.denominator = fps;
        parm->parm.capture.readbuffers = 0;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *req = arg;
        if (req->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || req->memory != V4L2_MEMORY_MMAP)
            return fail(EINVAL);
        if (fake->streaming)
            return fail(EBUSY);
        if (req->count == 0) {
            /* Like videobuf2: a queue another file streams on is busy, even to free nothing. */
            if (fake->lockfd < 0 && take_lock(fake) < 0)
                return -1;
            free_buffers(fake);
            release_lock(fake);
            return 0;
        }
        free_buffers(fake);
        if (take_lock(fake) < 0)
            return -1;
        unsigned count = req->count > MAX_BUFFERS ? MAX_BUFFERS : req->count;
        long page = sysconf(_SC_PAGESIZE);
        fake->buffer_size = image_size(fake);
        fake->buffer_stride = (fake->buffer_size + page - 1) / page * page;
        fake->memfd = memfd_create("fakecam", MFD_CLOEXEC);
        if (fake->memfd < 0 || ftruncate(fake->memfd, fake->buffer_stride * count) < 0)
            return fail(ENOMEM);
        fake->memory = real_mmap(NULL, fake->buffer_stride * count, PROT_READ | PROT_WRITE, MAP_SHARED, fake->memfd, 0);
        if (fake->memory == MAP_FAILED) {
            fake->memory = NULL;
            return fail(ENOMEM);
        }
        fake->count = count;
        req->count = count;
        return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF:
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *buf = arg;
        if (buf->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || buf->memory != V4L2_MEMORY_MMAP)
            return fail(EINVAL);
        if (request == VIDIOC_QUERYBUF) {
            if (buf->index >= fake->count)
                return fail(EINVAL);
            buf->m.offset = buf->index * fake->buffer_stride;
            buf->length = fake->buffer_size;
            buf->bytesused = 0;
            buf->flags = V4L2_BUF_FLAG_MAPPED | (fake->queued[buf->index] ? V4L2_BUF_FLAG_QUEUED : 0);
            return 0;
        }
        if (request == VIDIOC_QBUF) {
            if (buf->index >= fake->count || fake->queued[buf->index])
                return fail(EINVAL);
            fake->queued[buf->index] = 1;
            fake->queue[fake->queue_len++] = buf->index;
            return 0;
        }
        if (!fake->streaming)
            return fail(EINVAL);
        if (state == HUNG) {
            arm(fake, 0); /* a wedged camera: select never sees the fd ready */
            return fail(EAGAIN);
        }
        uint64_t ticks;
        if (read(fake->fd, &ticks, sizeof(ticks)) != sizeof(ticks)) {
            struct itimerspec now;
            if (timerfd_gettime(fake->fd, &now) == 0 && now.it_interval.tv_nsec == 0)
                arm(fake, 1); /* no longer hung */
            return fail(EAGAIN);
        }
        if (fake->queue_len == 0)
            return fail(EAGAIN);
        unsigned index = fake->queue[0];
        memmove(fake->queue, fake->queue + 1, (fake->queue_len - 1) * sizeof(fake->queue[0]));
        fake->queue_len--;
        fake->queued[index] = 0;
        ssize_t used = fill(fake, index);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        buf->index = index;
        buf->bytesused = used > 0 ? (uint32_t)used : 0;
        buf->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
                     (used > 0 ? 0 : V4L2_BUF_FLAG_ERROR);
        buf->field = V4L2_FIELD_NONE;
        buf->timestamp.tv_sec = now.tv_sec;
        buf->timestamp.tv_usec = now.tv_nsec / 1000;
        buf->sequence = fake->sequence++;
        buf->length = fake->buffer_size;
        buf->m.offset = index * fake->buffer_stride;
        return 0;
    }
    case VIDIOC_STREAMON: {
        if (fake->count == 0)
            return fail(EINVAL);
        if (take_lock(fake) < 0)
            return -1;
        if (!fake->streaming) {
            fake->streaming = 1;
            fake->served = 0;
            struct timespec started;
            clock_gettime(CLOCK_REALTIME, &started);
            fake->stream_started = (long long)started.tv_sec * 1000 + started.tv_nsec / 1000000;
            arm(fake, state != HUNG);
            char code[5];
            fourcc_text(fake->pixelformat, code);
            event("streamon %ux%u %s", fake->width, fake->height, code);
        }
        return 0;
    }
    case VIDIOC_STREAMOFF: {
        if (fake->streaming) {
            fake->streaming = 0;
            arm(fake, 0);
            fake->queue_len = 0;
            memset(fake->queued, 0, sizeof(fake->queued));
            event("streamoff");
        }
        return 0;
    }
    case VIDIOC_QUERYCTRL:
        return query_control(arg);
    case VIDIOC_QUERYMENU: {
        struct v4l2_querymenu *menu = arg;
        int index = control_index(menu->id);
        if (index < 0 || controls[index].type != V4L2_CTRL_TYPE_MENU || menu->index > (uint32_t)controls[index].maximum ||
            menu->index < (uint32_t)controls[index].minimum || controls[index].menu[menu->index] == NULL)
            return fail(EINVAL);
        snprintf((char *)menu->name, sizeof(menu->name), "%s", controls[index].menu[menu->index]);
        return 0;
    }
    case VIDIOC_G_CTRL: {
        struct v4l2_control *control = arg;
        int index = control_index(control->id);
        if (index < 0)
            return fail(EINVAL);
        control->value = values[index];
        return 0;
    }
    case VIDIOC_S_CTRL:
        return set_control(arg);
    default:
        return fail(ENOTTY);
    }
}

int ioctl(int fd, unsigned long request, ...) {
    init();
    va_list args;
    va_start(args, request);
    void *arg = va_arg(args, void *);
    va_end(args);
    struct fake *fake = fake_of(fd);
    if (fake == NULL)
        return real_ioctl(fd, request, arg);
    int plug;
    int state = read_state(&plug);
    pthread_mutex_lock(&lock);
    int result;
    if (state == UNPLUGGED || plug != fake->plug)
        fake->dead = 1;
    if (state == WEDGED) /* only the streams that were running then */
        state = fake->streaming && fake->stream_started < wedged_since ? HUNG : PLUGGED;
    if (fake->dead) {
        result = fail(ENODEV);
    } else if (request == VIDIOC_QUERYCAP) {
        struct v4l2_capability *cap = arg;
        memset(cap, 0, sizeof(*cap));
        snprintf((char *)cap->driver, sizeof(cap->driver), "uvcvideo");
        snprintf((char *)cap->card, sizeof(cap->card), "Fake UVC Camera");
        snprintf((char *)cap->bus_info, sizeof(cap->bus_info), "usb-0000:00:14.0-1");
        cap->version = (6 << 16) | (1 << 8);
        cap->capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING |
                            V4L2_CAP_EXT_PIX_FORMAT | V4L2_CAP_DEVICE_CAPS;
        cap->device_caps = (fake->node == META ? V4L2_CAP_META_CAPTURE : V4L2_CAP_VIDEO_CAPTURE) |
                           V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT;
        result = 0;
    } else if (fake->node == META) {
        result = meta_ioctl(fake, request, arg);
    } else {
        result = capture_ioctl(fake, request, arg, state);
    }
    int saved = errno;
    pthread_mutex_unlock(&lock);
    if (getenv("FAKECAM_DEBUG"))
        fprintf(stderr, "fakecam: ioctl %s nr=%lu -> %d (%s)\n", node_path[fake->node], request & 0xff, result,
                result < 0 ? strerror(saved) : "ok");
    errno = saved;
    return result;
}

/* ---- mapping buffers ---- */

static void *map_fake(struct fake *fake, void *addr, size_t length, int prot, int flags, off_t offset) {
    pthread_mutex_lock(&lock);
    int memfd = fake->memfd;
    pthread_mutex_unlock(&lock);
    if (memfd < 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    return real_mmap(addr, length, prot, flags, memfd, offset);
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
    init();
    struct fake *fake = fake_of(fd);
    return fake ? map_fake(fake, addr, length, prot, flags, offset) : real_mmap(addr, length, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off64_t offset) {
    init();
    struct fake *fake = fake_of(fd);
    return fake ? map_fake(fake, addr, length, prot, flags, offset) : real_mmap64(addr, length, prot, flags, fd, offset);
}

/* ---- open and close ---- */

static mode_t mode_arg(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(args, mode_t) : 0;
}

int open(const char *path, int flags, ...) {
    init();
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    init();
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real_open64(path, flags, mode);
}

int __open_2(const char *path, int flags) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real___open_2(path, flags);
}

int __open64_2(const char *path, int flags) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real___open64_2(path, flags);
}

int openat(int dirfd, const char *path, int flags, ...) {
    init();
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    init();
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    int node = node_of(path);
    return node >= 0 ? fake_open(node) : real_openat64(dirfd, path, flags, mode);
}

int close(int fd) {
    init();
    if (fake_of(fd))
        forget(fd);
    return real_close(fd);
}

/* ---- stat, access, realpath ---- */

static int fake_stat(int node, struct stat *buf) {
    if (present() < 0)
        return -1;
    memset(buf, 0, sizeof(*buf));
    buf->st_mode = S_IFCHR | 0660;
    buf->st_rdev = makedev(81, node);
    buf->st_nlink = 1;
    buf->st_ino = 0xfaca0000 + node;
    buf->st_dev = makedev(0, 5);
    buf->st_blksize = 4096;
    return 0;
}

int stat(const char *path, struct stat *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, buf) : real_stat(path, buf);
}

int stat64(const char *path, struct stat64 *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, (struct stat *)buf) : real_stat64(path, buf);
}

int lstat(const char *path, struct stat *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, buf) : real_lstat(path, buf);
}

int lstat64(const char *path, struct stat64 *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, (struct stat *)buf) : real_lstat64(path, buf);
}

int fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, buf) : real_fstatat(dirfd, path, buf, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, (struct stat *)buf) : real_fstatat64(dirfd, path, buf, flags);
}

int __xstat(int version, const char *path, struct stat *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, buf) : real___xstat(version, path, buf);
}

int __xstat64(int version, const char *path, struct stat64 *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, (struct stat *)buf) : real___xstat64(version, path, buf);
}

int __lxstat(int version, const char *path, struct stat *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, buf) : real___lxstat(version, path, buf);
}

int __lxstat64(int version, const char *path, struct stat64 *buf) {
    init();
    int node = node_of(path);
    return node >= 0 ? fake_stat(node, (struct stat *)buf) : real___lxstat64(version, path, buf);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
    init();
    int node = node_of(path);
    if (node < 0)
        return real_statx(dirfd, path, flags, mask, buf);
    if (present() < 0)
        return -1;
    memset(buf, 0, sizeof(*buf));
    buf->stx_mask = STATX_BASIC_STATS;
    buf->stx_mode = S_IFCHR | 0660;
    buf->stx_nlink = 1;
    buf->stx_ino = 0xfaca0000 + node;
    buf->stx_rdev_major = 81;
    buf->stx_rdev_minor = node;
    buf->stx_blksize = 4096;
    return 0;
}

int access(const char *path, int how) {
    init();
    int node = node_of(path);
    return node >= 0 ? present() : real_access(path, how);
}

int faccessat(int dirfd, const char *path, int how, int flags) {
    init();
    int node = node_of(path);
    return node >= 0 ? present() : real_faccessat(dirfd, path, how, flags);
}

char *realpath(const char *path, char *resolved) {
    init();
    int node = node_of(path);
    if (node < 0)
        return real_realpath(path, resolved);
    if (present() < 0)
        return NULL;
    if (resolved == NULL)
        return strdup(path);
    snprintf(resolved, PATH_MAX, "%s", path);
    return resolved;
}

/* ---- listing /dev ---- */

DIR *opendir(const char *name) {
    init();
    DIR *dirp = real_opendir(name);
    if (dirp == NULL || !enabled)
        return dirp;
    char resolved[PATH_MAX];
    if (real_realpath(name, resolved) == NULL || strcmp(resolved, "/dev") != 0)
        return dirp;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < (int)(sizeof(listings) / sizeof(listings[0])); i++) {
        if (listings[i].dirp == NULL) {
            listings[i].dirp = dirp;
            listings[i].next = 0;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return dirp;
}

/* The next fake node's name for a listing of /dev that has run out of real entries. */
static const char *next_fake_name(DIR *dirp, struct listing **found) {
    *found = NULL;
    int plug, saved = errno; /* callers tell the end of a listing from an error by errno */
    for (int i = 0; i < (int)(sizeof(listings) / sizeof(listings[0])); i++) {
        struct listing *listing = &listings[i];
        if (listing->dirp != dirp)
            continue;
        int state = read_state(&plug);
        errno = saved;
        if (state == UNPLUGGED)
            return NULL;
        while (listing->next <= META) {
            const char *path = node_path[listing->next++];
            if (path[0] && strncmp(path, "/dev/", 5) == 0 && strchr(path + 5, '/') == NULL) {
                *found = listing;
                return path + 5;
            }
        }
    }
    return NULL;
}

struct dirent *readdir(DIR *dirp) {
    init();
    struct dirent *entry = real_readdir(dirp);
    if (entry || !enabled)
        return entry;
    struct listing *listing;
    const char *name = next_fake_name(dirp, &listing);
    if (name == NULL)
        return NULL;
    memset(&listing->entry, 0, sizeof(listing->entry));
    listing->entry.d_type = DT_CHR;
    listing->entry.d_ino = 0xfaca0000;
    snprintf(listing->entry.d_name, sizeof(listing->entry.d_name), "%s", name);
    return &listing->entry;
}

struct dirent64 *readdir64(DIR *dirp) {
    init();
    struct dirent64 *entry = real_readdir64(dirp);
    if (entry || !enabled)
        return entry;
    struct listing *listing;
    const char *name = next_fake_name(dirp, &listing);
    if (name == NULL)
        return NULL;
    memset(&listing->entry64, 0, sizeof(listing->entry64));
    listing->entry64.d_type = DT_CHR;
    listing->entry64.d_ino = 0xfaca0000;
    snprintf(listing->entry64.d_name, sizeof(listing->entry64.d_name), "%s", name);
    return &listing->entry64;
}

int closedir(DIR *dirp) {
    init();
    pthread_mutex_lock(&lock);
    for (int i = 0; i < (int)(sizeof(listings) / sizeof(listings[0])); i++)
        if (listings[i].dirp == dirp)
            listings[i].dirp = NULL;
    pthread_mutex_unlock(&lock);
    return real_closedir(dirp);
}
