//! Name pools per country. Accented letters are all ones the `ascii`
//! normaliser folds.

#[rustfmt::skip]
pub(super) const FIRST_FR: &[&str] = &[
    "Marie", "Élodie", "Camille", "Léa", "Chloé", "Manon", "Inès", "Zoé", "Noémie", "Hélène",
    "Céline", "Amélie", "Mélanie", "Sophie", "Julie", "Pauline", "Claire", "Anaïs", "Margaux",
    "Océane", "Émilie", "Aurélie", "Juliette", "Louise", "Jeanne", "Gaëlle", "Agnès", "Béatrice",
    "Cécile", "Danièle", "Françoise", "Geneviève", "Irène", "Josée", "Laetitia", "Maëlle", "Nadège",
    "Renée", "Solène", "Thérèse", "Jean", "Pierre", "Louis", "Lucas", "Hugo", "Théo", "Mathéo",
    "Noé", "Raphaël", "Gabriel", "Jérôme", "François", "Frédéric", "Stéphane", "Sébastien",
    "Grégoire", "Benoît", "Rémi", "Loïc", "Anaël", "Joël", "Mickaël", "Aurélien", "Clément",
    "Étienne", "Adèle", "Léon", "Jules", "Arthur", "Maxime", "Thomas", "Nicolas", "Antoine",
    "Julien", "Olivier", "Guillaume", "Vincent", "Xavier", "Yannick", "Cédric", "Hervé", "Jean-Luc",
    "Jean-Marc", "Marie-Claire", "Anne-Sophie", "Baptiste", "Romain", "Quentin", "Alexandre",
    "Valérie",
];

#[rustfmt::skip]
pub(super) const LAST_FR: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guérin",
    "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier",
    "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gérard", "Nguyen",
    "Boyer", "Denis", "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël",
    "Meyer", "Lucas", "Meunier", "Jean", "Pérez", "Marchand", "Dufour", "Blanchard", "Barbier",
    "Brun", "Dumas", "Brunet", "Schmitt", "Leroux", "Colin", "Fernandez", "Pierre", "Renard",
    "Arnaud", "Rolland", "Caron", "Aubert", "Giraud", "Leclerc", "Vidal", "Bourgeois", "Renaud",
    "Lemoine", "Picard", "Gaillard", "Philippe", "Leclercq", "Lacroix", "Fabre", "Dupuis",
    "Olivier", "Rodriguez", "Da Silva", "Hubert", "Louis", "Charles", "Guillot", "Rivière",
    "Le Gall", "Guillaume", "Adam", "Rey", "Moulin", "Gonzalez", "Berger", "Lecomte", "Ménard",
    "Fleury", "Deschamps", "Carpentier", "Julien", "Benoît", "Paris", "Maillard", "Marchal",
    "Aubry", "Vasseur", "Le Roux", "Renault", "Jacquet", "Collet", "Prévost", "Poirier",
    "Charpentier", "Royer", "Huet", "Baron", "Dupuy", "Pons", "Paul", "Laine", "Carré", "Breton",
    "Rémy", "Schneider", "Perrot", "Barré", "Marty", "Cousin", "Besnard", "Héraud", "Lévêque",
    "Bélanger", "Desprès", "Crépin", "Lebrun", "Tessier",
];

#[rustfmt::skip]
pub(super) const FIRST_GB: &[&str] = &[
    "Oliver", "George", "Harry", "Jack", "Jacob", "Charlie", "Oscar", "William", "James", "Henry",
    "Alfie", "Archie", "Joshua", "Freddie", "Edward", "Samuel", "Daniel", "Benjamin", "Alexander",
    "Amelia", "Olivia", "Isla", "Emily", "Poppy", "Ava", "Isabella", "Jessica", "Lily", "Grace",
    "Evie", "Ella", "Charlotte", "Mia", "Ruby", "Florence", "Harriet", "Imogen", "Eleanor",
    "Siobhan", "Niamh", "Aoife", "Rhys", "Gareth", "Dylan", "Bethan", "Catrin", "Fiona", "Hamish",
    "Callum", "Eilidh", "Rebecca", "Matthew",
];

#[rustfmt::skip]
pub(super) const LAST_GB: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
    "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis",
    "Cox", "Alexander", "Morgan", "Moore", "Edwards", "Hughes", "Turner", "Hill", "Harris", "Lee",
    "Cooper", "Ward", "Morris", "King", "Baker", "Harrison", "Scott", "Young", "Allen", "Watson",
    "Carter", "Murphy", "O'Brien", "O'Connor", "MacDonald", "Campbell", "Stewart", "Anderson",
    "Reid", "Murray", "Kelly", "Price", "Bennett", "Griffiths", "Fletcher", "Holmes", "Fraser",
    "Gallagher", "Shaw",
];

#[rustfmt::skip]
pub(super) const FIRST_DE: &[&str] = &[
    "Jürgen", "Jörg", "Günter", "Björn", "Sören", "Uwe", "Dieter", "Klaus", "Stefan", "Matthias",
    "Andreas", "Tobias", "Florian", "Lukas", "Maximilian", "Felix", "Jonas", "Leon", "Paul",
    "Niklas", "Moritz", "Sebastian", "Katrin", "Jördis", "Käthe", "Dörte", "Anja", "Birgit",
    "Sabine", "Ursula", "Monika", "Petra", "Claudia", "Susanne", "Franziska", "Johanna", "Lena",
    "Hannah", "Leonie", "Annika", "Greta", "Frieda", "Mareike", "Ute", "Heike", "Gisela",
];

#[rustfmt::skip]
pub(super) const LAST_DE: &[&str] = &[
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner",
    "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann",
    "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller",
    "Jung", "Hahn", "Vogel", "Friedrich", "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth",
    "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon", "Ludwig", "Böhm",
    "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt", "Stein", "Jäger", "Otto", "Sommer",
    "Seidel", "Heinrich", "Brandt", "Haas",
];

#[rustfmt::skip]
pub(super) const FIRST_NL: &[&str] = &[
    "Daan", "Sem", "Bram", "Lars", "Thijs", "Jesse", "Ruben", "Stijn", "Joris", "Pieter", "Maarten",
    "Wouter", "Sander", "Koen", "Bas", "Niels", "Floor", "Sanne", "Fleur", "Lotte", "Femke",
    "Anouk", "Iris", "Noor", "Roos", "Eva", "Marloes", "Ilse", "Esmée", "Maaike", "Wietske",
    "Ineke", "Joëlle", "Chloë",
];

#[rustfmt::skip]
pub(super) const LAST_NL: &[&str] = &[
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
    "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
    "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
    "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
    "van den Broek", "de Bruijn", "de Bruin", "van der Heijden", "Schouten", "van Beek", "Willems",
    "van Vliet", "van de Ven", "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal",
    "Prins", "Blom", "Huisman",
];

#[rustfmt::skip]
pub(super) const CITIES_FR: &[&str] = &[
    "Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier",
    "Bordeaux", "Lille", "Rennes", "Reims", "Saint-Étienne", "Le Havre", "Toulon", "Grenoble",
    "Dijon", "Angers", "Nîmes", "Villeurbanne", "Clermont-Ferrand", "Aix-en-Provence", "Brest",
    "Limoges", "Tours", "Amiens", "Perpignan", "Metz", "Besançon", "Orléans",
];

#[rustfmt::skip]
pub(super) const CITIES_GB: &[&str] = &[
    "London", "Birmingham", "Manchester", "Leeds", "Glasgow", "Liverpool", "Bristol", "Sheffield",
    "Edinburgh", "Cardiff", "Leicester", "Nottingham", "Newcastle", "Brighton", "Oxford",
    "Cambridge", "Belfast", "York",
];

#[rustfmt::skip]
pub(super) const CITIES_DE: &[&str] = &[
    "Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf",
    "Leipzig", "Dortmund", "Essen", "Bremen", "Dresden", "Hannover", "Nürnberg", "Bonn", "Münster",
];

#[rustfmt::skip]
pub(super) const CITIES_NL: &[&str] = &[
    "Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere",
    "Breda", "Nijmegen", "Haarlem", "Arnhem", "Leiden", "Delft", "Maastricht",
];
