#!/usr/bin/env python3
"""make_images.py -- the OCR test set, drawn by ImageMagick on this machine.

    make_images.py OUTDIR [--count N] [--seed S]

Writes N registration-certificate-like cards (СТС: Russian labels, a plate,
a VIN in the usual place), each rotated a few degrees, with noise, JPEG
compressed at a low quality, N/4 part photos (a box label with a part
name and a part number, no VIN), and N/4 СТС cards of Japanese cars (no
VIN, a frame number such as NZE121-3012345), plus manifest.json:
[{"file": "sts_00.jpg", "kind": "document", "vin": "XW8..."},
 {"file": "part_00.jpg", "kind": "part", "part": "колодки тормозные"},
 {"file": "frame_00.jpg", "kind": "frame", "frame": "GX100-1234567"}].

VINs are random but valid by ISO 3779: a real WMI, the check digit computed,
the last six characters digits, with B, S, Z, G and 8, 5, 2, 6 in the VDS so
the set exercises the confusions OCR makes. Deterministic for a seed.
"""
import json
import os
import random
import subprocess
import sys

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
WMIS = ["XW8", "XTA", "Z94", "WVW", "1HG", "JTD", "KMH", "VF1", "X7L", "2T1"]
VDS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789BSZG8526"
YEARS = "ABCDEFGHJKLMNPRSTVWXY123456789"
MODELS = ["VOLKSWAGEN POLO", "LADA GRANTA", "HYUNDAI SOLARIS", "KIA RIO",
          "TOYOTA CAMRY", "RENAULT LOGAN", "SKODA OCTAVIA", "HONDA CIVIC"]
COLORS = ["БЕЛЫЙ", "ЧЕРНЫЙ", "СЕРЕБРИСТЫЙ", "СИНИЙ", "КРАСНЫЙ"]
PLATE_L = "АВЕКМНОРСТУХ"
# Toyota frame model codes (the part before the hyphen of a frame number)
FRAME_CODES = ["GX100", "GX110", "NZE121", "NZE141", "ZZE122", "AE110", "JZX100", "GRX120",
               "AZR60", "NCP10", "ANH20", "ZRE142", "ACV30", "SXE10"]
JP_MODELS = ["TOYOTA MARK II", "TOYOTA COROLLA", "TOYOTA CROWN", "TOYOTA NOAH", "TOYOTA VITZ",
             "TOYOTA ALPHARD", "TOYOTA CAMRY"]
PARTS = [("колодки тормозные", "0 986 494 123"), ("фильтр масляный", "W 712/75"),
         ("свечи зажигания", "BKR6E-11"), ("амортизатор передний", "334 837"),
         ("ремень ГРМ", "CT 1028"), ("стойка стабилизатора", "JTS 427")]


def vin_value(ch):
    values = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 0, 7, 0, 9, 2, 3, 4, 5, 6, 7, 8, 9]
    return int(ch) if ch.isdigit() else values[ord(ch) - ord("A")]


def check_digit(v):
    w = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
    r = sum(vin_value(c) * w[i] for i, c in enumerate(v)) % 11
    return "X" if r == 10 else str(r)


def make_vin(rnd):
    v = rnd.choice(WMIS) + "".join(rnd.choice(VDS) for _ in range(5)) + "0"
    v += rnd.choice(YEARS) + rnd.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")
    v += "".join(rnd.choice("0123456789") for _ in range(6))
    return v[:8] + check_digit(v) + v[9:]


def draw(out, size, bg, texts, angle, noise, quality, seed):
    # -seed: ImageMagick's noise is random too; the set must be the same
    # on every run for its hit rate to mean anything.
    cmd = ["convert", "-seed", str(seed), "-size", size, "xc:" + bg, "-fill", "#262626"]
    for font, pt, x, y, t in texts:
        cmd += ["-font", font, "-pointsize", str(pt), "-annotate", "+%d+%d" % (x, y), t]
    cmd += ["-background", bg, "-rotate", "%.1f" % angle,
            "-attenuate", "%.2f" % noise, "+noise", "Gaussian", "-quality", str(quality), out]
    # one thread: OpenMP threads spin-waiting on a busy machine made
    # convert several times slower (plugins/ocr/README.md)
    subprocess.run(cmd, check=True, env=dict(os.environ, MAGICK_THREAD_LIMIT="1"))


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out, count, seed = args[0], 12, 1
    if "--count" in args:
        count = int(args[args.index("--count") + 1])
    if "--seed" in args:
        seed = int(args[args.index("--seed") + 1])
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(seed)
    manifest = []
    for i in range(count):
        vin = make_vin(rnd)
        plate = "%s%03d%s%s%d" % (rnd.choice(PLATE_L), rnd.randint(1, 999), rnd.choice(PLATE_L),
                                  rnd.choice(PLATE_L), rnd.choice([77, 96, 196, 750, 23]))
        texts = [
            (BOLD, 30, 40, 60, "СВИДЕТЕЛЬСТВО О РЕГИСТРАЦИИ ТС"),
            (FONT, 24, 40, 130, "Регистрационный знак"), (BOLD, 28, 420, 130, plate),
            (FONT, 24, 40, 190, "Идентификационный номер (VIN)"), (BOLD, 28, 540, 190, vin),
            (FONT, 24, 40, 250, "Марка, модель"), (FONT, 24, 420, 250, rnd.choice(MODELS)),
            (FONT, 24, 40, 310, "Год выпуска ТС"), (FONT, 24, 420, 310, str(rnd.randint(2005, 2024))),
            (FONT, 24, 40, 370, "Шасси (рама) №"), (FONT, 24, 420, 370, "ОТСУТСТВУЕТ"),
            (FONT, 24, 40, 430, "Цвет"), (FONT, 24, 420, 430, rnd.choice(COLORS)),
        ]
        name = "sts_%02d.jpg" % i
        draw(os.path.join(out, name), "1040x500", rnd.choice(["#e6efdf", "#efe9dc", "#f2f2ea"]),
             texts, rnd.uniform(-4, 4), rnd.uniform(0.2, 0.6), rnd.randint(45, 75), rnd.randint(1, 1 << 30))
        manifest.append({"file": name, "kind": "document", "vin": vin})
    for i in range(max(1, count // 4)):
        part, number = PARTS[i % len(PARTS)]
        texts = [(BOLD, 40, 40, 90, part.upper()), (FONT, 30, 40, 160, "Арт. " + number),
                 (FONT, 24, 40, 220, "Made in EU")]
        name = "part_%02d.jpg" % i
        draw(os.path.join(out, name), "800x300", "#f4f0e6", texts, rnd.uniform(-3, 3),
             rnd.uniform(0.2, 0.5), rnd.randint(50, 75), rnd.randint(1, 1 << 30))
        manifest.append({"file": name, "kind": "part", "part": part})
    # Japanese cars (right-hand drive) have no VIN: the СТС says ОТСУТСТВУЕТ
    # there and carries the frame number under «Шасси (рама) №», as the
    # Japanese registration (車台番号) and export certificates print it:
    # model code, hyphen, serial. A generator of its own, so the cards
    # above stay the same for a seed.
    jrnd = random.Random(seed + 1000)
    for i in range(max(1, count // 4)):
        frame = "%s-%07d" % (jrnd.choice(FRAME_CODES), jrnd.randint(1000000, 9999999))
        plate = "%s%03d%s%s%d" % (jrnd.choice(PLATE_L), jrnd.randint(1, 999), jrnd.choice(PLATE_L),
                                  jrnd.choice(PLATE_L), jrnd.choice([25, 125, 27, 54, 154]))
        texts = [
            (BOLD, 30, 40, 60, "СВИДЕТЕЛЬСТВО О РЕГИСТРАЦИИ ТС"),
            (FONT, 24, 40, 130, "Регистрационный знак"), (BOLD, 28, 420, 130, plate),
            (FONT, 24, 40, 190, "Идентификационный номер (VIN)"), (FONT, 24, 540, 190, "ОТСУТСТВУЕТ"),
            (FONT, 24, 40, 250, "Марка, модель"), (FONT, 24, 420, 250, jrnd.choice(JP_MODELS)),
            (FONT, 24, 40, 310, "Год выпуска ТС"), (FONT, 24, 420, 310, str(jrnd.randint(1998, 2012))),
            (FONT, 24, 40, 370, "Шасси (рама) №"), (BOLD, 28, 420, 370, frame),
            (FONT, 24, 40, 430, "Цвет"), (FONT, 24, 420, 430, jrnd.choice(COLORS)),
        ]
        name = "frame_%02d.jpg" % i
        draw(os.path.join(out, name), "1040x500", jrnd.choice(["#e6efdf", "#efe9dc", "#f2f2ea"]),
             texts, jrnd.uniform(-4, 4), jrnd.uniform(0.2, 0.6), jrnd.randint(45, 75), jrnd.randint(1, 1 << 30))
        manifest.append({"file": name, "kind": "frame", "frame": frame})
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
