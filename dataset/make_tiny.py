"""Regenerates dataset/tiny (the small dataset the tests ship): python dataset/make_tiny.py"""

import os
import random

GENRES = ["Comedy", "Drama", "Horror", "Sci-Fi"]
WORDS = {
    "Comedy": ["Laughing", "Silly", "Happy", "Funny", "Goofy"],
    "Drama": ["Quiet", "Broken", "Long", "Distant", "Tender"],
    "Horror": ["Dark", "Haunted", "Bloody", "Cursed", "Silent"],
    "Sci-Fi": ["Galactic", "Quantum", "Robot", "Stellar", "Cyber"],
}
NOUNS = [
    "Harbor",
    "Night",
    "Road",
    "Summer",
    "House",
    "Planet",
    "Garden",
    "River",
    "Kingdom",
    "Door",
]


TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny")


def main(folder=TINY):
    rng = random.Random(7)
    os.makedirs(folder, exist_ok=True)
    items = []
    for i in range(1, 41):
        genre = GENRES[i % 4]
        title = f"{rng.choice(WORDS[genre])} {rng.choice(NOUNS)}"
        if i == 5:
            title = "Tom &amp; Jerry: Laughing Together"
        if i == 9:
            title = "Amélie's  Quiet   Garden"
        items.append((f"i{i}", title, genre, str(1980 + i)))
    with open(os.path.join(folder, "tiny.item"), "w", encoding="utf-8") as f:
        f.write("item_id:token\ttitle:token_seq\tgenre:token_seq\tyear:token\n")
        for item in items:
            f.write("\t".join(item) + "\n")
    with open(os.path.join(folder, "tiny.inter"), "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u in range(1, 31):
            favourite = GENRES[u % 4]
            pool = [it for it in items if it[2] == favourite]
            others = [it for it in items if it[2] != favourite]
            length = rng.randint(6, 12)
            seq = [rng.choice(pool if rng.random() < 0.8 else others)[0] for _ in range(length)]
            for t, item in enumerate(dict.fromkeys(seq), 1):
                f.write(f"u{u}\t{item}\t{t}\n")


if __name__ == "__main__":
    main()
